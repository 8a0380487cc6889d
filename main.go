// Command vkgan trains GANs on any Vulkan device, including none at all
// (Mesa's lavapipe runs the same kernels on the CPU).
//
// Usage:
//
//	vkgan COMMAND [flags]
//
// Commands: devices, bench, tune, train, sample, eval, data, toy, view, help.
// `vkgan COMMAND -h` lists a command's flags.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"vkgan/viewer"
)

// command is one subcommand: its flags and what it does with them.
type command struct {
	name    string
	summary string
	flags   func(fs *flag.FlagSet) func() error // declares flags, returns the action
	args    string                              // positional arguments taken, for usage; "" for none
}

var commands = []command{
	{"devices", "list Vulkan devices and the one vkgan would use", devicesCmd, ""},
	{"bench", "time kernels with GPU timestamps (GFLOP/s, GB/s)", benchCmd, ""},
	{"tune", "time the GEMM variants on a model's shapes and keep the fastest for this device", tuneCmd, ""},
	{"train", "train a DCGAN on a folder of images or the emoji set", trainCmd, ""},
	{"sample", "write samples, a latent interpolation, or samples beside their nearest training images", sampleCmd, ""},
	{"eval", "score a run's generator (SWD, KID, FID) or compare two image folders", evalCmd, ""},
	{"data", "fetch a data set: vkgan data emoji", dataCmd, "emoji"},
	{"toy", "train a GAN on a 2D mixture and draw D's field and G's samples", toyCmd, ""},
	{"view", "open a window with live samples from a run's generator", viewCmd, "RUN_DIR"},
}

// cmdArgs are the positional arguments of the running command.
var cmdArgs []string

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// errUsage marks a command-line mistake; the flag package already printed why.
var errUsage = errors.New("usage")

// errQuiet fails a command without a message: another rank of an MPI job
// printed it.
var errQuiet = errors.New("failed; another rank reported why")

// stdout is where commands write their report; run sets it so tests can
// capture it.
var stdout io.Writer = os.Stdout

// stderr is where long-running commands write progress and messages.
var stderr io.Writer = os.Stderr

// run executes a command line and returns the process exit code: 0 on
// success, 1 when the command fails, 2 on a usage error.
func run(args []string, out, errw io.Writer) int {
	stdout, stderr = out, errw
	if len(args) == 0 {
		usage(errw)
		return 2
	}
	name := args[0]
	if name == "help" || name == "-h" || name == "-help" || name == "--help" {
		if len(args) > 1 {
			return run([]string{args[1], "-h"}, out, errw)
		}
		usage(out)
		return 0
	}
	for _, c := range commands {
		if c.name != name {
			continue
		}
		fs := flag.NewFlagSet("vkgan "+c.name, flag.ContinueOnError)
		fs.SetOutput(errw)
		action := c.flags(fs)
		fs.Usage = func() {
			fmt.Fprintf(fs.Output(), "usage: vkgan %s [flags] %s\n\n%s.\n\nFlags:\n", c.name, c.args, c.summary)
			fs.PrintDefaults()
		}
		if err := fs.Parse(args[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		// Flags may also follow positional arguments (vkgan view RUN -frames 5).
		cmdArgs = nil
		for c.args != "" && fs.NArg() > 0 {
			cmdArgs = append(cmdArgs, fs.Arg(0))
			if err := fs.Parse(fs.Args()[1:]); err != nil {
				if errors.Is(err, flag.ErrHelp) {
					return 0
				}
				return 2
			}
		}
		if fs.NArg() > 0 && c.args == "" {
			fmt.Fprintf(errw, "vkgan %s: unexpected argument %q\n", c.name, fs.Arg(0))
			fs.Usage()
			return 2
		}
		if err := action(); err != nil {
			if !errors.Is(err, errQuiet) {
				fmt.Fprintf(errw, "vkgan: %v\n", err)
			}
			var ee *viewer.ExitError
			if errors.As(err, &ee) {
				return ee.Code
			}
			return 1
		}
		return 0
	}
	fmt.Fprintf(errw, "vkgan: unknown command %q\n\n", name)
	usage(errw)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: vkgan COMMAND [flags]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "  %-9s %s\n", "help", "show this list, or `vkgan help COMMAND` for a command's flags")
	fmt.Fprintf(w, "\nEnvironment:\n"+
		"  VKGAN_DEVICE=I|NAME  device index or name substring (see vkgan devices)\n"+
		"  VKGAN_VALIDATE=1     enable the Khronos validation layer\n")
}
