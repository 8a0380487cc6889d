package dirlock

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSecondLockFailsAtOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	a, err := Acquire(dir)
	require.NoError(t, err)
	// flock belongs to the open file, so a second open in this process
	// conflicts just as another process would.
	b, err := Acquire(dir)
	require.Nil(t, b)
	require.ErrorIs(t, err, ErrLocked)
	var he *HeldError
	require.True(t, errors.As(err, &he))
	require.Contains(t, he.Holder, "pid "+strconv.Itoa(os.Getpid()))
	require.Contains(t, err.Error(), "in use by pid")

	require.NoError(t, a.Release())
	require.NoError(t, a.Release(), "a second Release is a no-op")
	c, err := Acquire(dir)
	require.NoError(t, err, "released locks can be taken again")
	require.NoError(t, c.Release())
	var nilLock *Lock
	require.NoError(t, nilLock.Release())
}

// TestLockDiesWithProcess holds the lock in a child process, kills it with
// SIGKILL and takes the lock: nothing stale outlives a crash.
func TestLockDiesWithProcess(t *testing.T) {
	if os.Getenv("DIRLOCK_HOLD") != "" {
		l, err := Acquire(os.Getenv("DIRLOCK_HOLD"))
		if err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString("locked\n")
		time.Sleep(time.Minute)
		l.Release()
		os.Exit(0)
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockDiesWithProcess$")
	cmd.Env = append(os.Environ(), "DIRLOCK_HOLD="+dir)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	buf := make([]byte, 7)
	_, err = out.Read(buf)
	require.NoError(t, err)
	require.Equal(t, "locked\n", string(buf))

	_, err = Acquire(dir)
	var he *HeldError
	require.True(t, errors.As(err, &he), "got %v", err)
	require.True(t, strings.HasPrefix(he.Holder, "pid "+strconv.Itoa(cmd.Process.Pid)+":"), he.Holder)

	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	l, err := Acquire(dir)
	require.NoError(t, err)
	require.NoError(t, l.Release())
}
