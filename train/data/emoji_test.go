package data

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tarEntry is one entry of a synthetic package tarball.
type tarEntry struct {
	name string
	body []byte
	typ  byte // 0 = regular file
}

// writeTGZ writes a gzipped tarball of entries to dir/name.
func writeTGZ(t *testing.T, dir, name string, entries []tarEntry) string {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		if e.typ != 0 {
			hdr.Typeflag, hdr.Size = e.typ, 0
			if e.typ == tar.TypeSymlink {
				hdr.Linkname = "/etc/passwd"
			}
		}
		require.NoError(t, tw.WriteHeader(hdr))
		if hdr.Size > 0 {
			_, err := tw.Write(e.body)
			require.NoError(t, err)
		}
	}
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, buf.Bytes(), 0o644))
	return p
}

// fakeEmojiJSON is a small emoji.json in the emoji-datasource layout.
func fakeEmojiJSON(t *testing.T) []byte {
	t.Helper()
	type skin struct {
		Image string `json:"image"`
	}
	type entry struct {
		Image          string          `json:"image"`
		Category       string          `json:"category"`
		Subcategory    string          `json:"subcategory"`
		SortOrder      int             `json:"sort_order"`
		HasImgTwitter  bool            `json:"has_img_twitter"`
		SkinVariations map[string]skin `json:"skin_variations,omitempty"`
	}
	b, err := json.Marshal([]entry{
		{Image: "1f431.png", Category: "Animals & Nature", Subcategory: "animal-mammal", SortOrder: 5, HasImgTwitter: true},
		{Image: "1f600.png", Category: "Smileys & Emotion", Subcategory: "face-smiling", SortOrder: 1, HasImgTwitter: true},
		{Image: "1f98a.png", Category: "Animals & Nature", Subcategory: "animal-mammal", SortOrder: 6, HasImgTwitter: true},
		{Image: "1f438.png", Category: "Animals & Nature", Subcategory: "animal-amphibian", SortOrder: 7, HasImgTwitter: true},
		{Image: "1f44b.png", Category: "People & Body", Subcategory: "hand-fingers-open", SortOrder: 3, HasImgTwitter: true,
			SkinVariations: map[string]skin{"1F3FB": {Image: "1f44b-1f3fb.png"}, "1F3FF": {Image: "1f44b-1f3ff.png"}}},
		{Image: "1f639.png", Category: "Smileys & Emotion", Subcategory: "cat-face", SortOrder: 2, HasImgTwitter: true},
	})
	require.NoError(t, err)
	return b
}

var fakeEmojiImages = []string{"1f431.png", "1f600.png", "1f98a.png", "1f438.png", "1f44b.png", "1f44b-1f3fb.png", "1f44b-1f3ff.png", "1f639.png"}

// fakeEmojiPackage writes a tarball shaped like emoji-datasource-twitter and
// returns its path and a set pinned to it.
func fakeEmojiPackage(t *testing.T, extra ...tarEntry) (string, emojiSet) {
	t.Helper()
	png := encodePNG(t, solid(64, 64, color.NRGBA{255, 200, 0, 255}))
	entries := []tarEntry{
		{name: "package/package.json", body: []byte(`{"name":"emoji-datasource-test"}`)},
		{name: "package/emoji.json", body: fakeEmojiJSON(t)},
		{name: "package/img/test/", typ: tar.TypeDir},
		{name: "package/img/test/32/1f600.png", body: png},           // other size: skipped
		{name: "package/img/test/sheets/64.png", body: png},          // sprite sheet: skipped
		{name: "package/img/test/64/link.png", typ: tar.TypeSymlink}, // link: skipped
		{name: "package/img/other/64/1f600.png", body: png},          // other set: skipped
	}
	for _, n := range fakeEmojiImages {
		entries = append(entries, tarEntry{name: "package/img/test/64/" + n, body: png})
	}
	entries = append(entries, extra...)
	tgz := writeTGZ(t, t.TempDir(), "pkg.tgz", entries)
	integrity, err := integrityOf(tgz)
	require.NoError(t, err)
	return tgz, emojiSet{name: "test", pkg: "emoji-datasource-test", version: "1.0.0", integrity: integrity, images: len(fakeEmojiImages)}
}

func TestIntegrityOf(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hello")
	require.NoError(t, os.WriteFile(p, []byte("hello"), 0o644))
	got, err := integrityOf(p)
	require.NoError(t, err)
	// From `printf hello | openssl dgst -sha512 -binary | base64`.
	assert.Equal(t, "sha512-m3HSJL1i83hdltRq0+o9czGb+8KJDKra4t/3JRlnPKcjI8PZm6XBHXx6zG4UuMXaDEZjR1wuXDre9G9zvN7AQw==", got)
}

func TestInstallEmojiSet(t *testing.T) {
	tgz, set := fakeEmojiPackage(t)
	root := t.TempDir()
	var log bytes.Buffer
	n, err := installEmojiSet(tgz, set, root, &log)
	require.NoError(t, err)
	assert.Equal(t, len(fakeEmojiImages), n)
	assert.Contains(t, log.String(), "emoji: unpacking test 8/8")

	entries, err := os.ReadDir(filepath.Join(root, "test"))
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := append([]string{".complete", "emoji.json"}, fakeEmojiImages...)
	assert.ElementsMatch(t, want, names)
	assert.True(t, emojiSetComplete(root, set))

	// No work folders are left behind, and the images load.
	top, err := os.ReadDir(root)
	require.NoError(t, err)
	require.Len(t, top, 1)
	ds, err := LoadDir(root, LoadOptions{Size: 32})
	require.NoError(t, err)
	assert.Equal(t, len(fakeEmojiImages), ds.N)

	// Installing again replaces the set whole.
	require.NoError(t, os.WriteFile(filepath.Join(root, "test", "stray.png"), []byte("x"), 0o644))
	_, err = installEmojiSet(tgz, set, root, nil)
	require.NoError(t, err)
	assert.NoFileExists(t, filepath.Join(root, "test", "stray.png"))
	top, err = os.ReadDir(root)
	require.NoError(t, err)
	assert.Len(t, top, 1)

	// A set stamped by another version is not complete.
	other := set
	other.version = "2.0.0"
	assert.False(t, emojiSetComplete(root, other))
}

func TestInstallEmojiSetBadIntegrity(t *testing.T) {
	tgz, set := fakeEmojiPackage(t)
	set.integrity = emojiSets[0].integrity // the real Twemoji hash: cannot match
	root := t.TempDir()
	_, err := installEmojiSet(tgz, set, root, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "integrity")
	assert.Contains(t, err.Error(), set.integrity)
	assert.NoDirExists(t, filepath.Join(root, "test"))

	// One flipped byte is enough.
	b, err := os.ReadFile(tgz)
	require.NoError(t, err)
	_, set = fakeEmojiPackage(t)
	b[len(b)/2] ^= 1
	require.NoError(t, os.WriteFile(tgz, b, 0o644))
	_, err = installEmojiSet(tgz, set, root, nil)
	require.Error(t, err)
}

func TestInstallEmojiSetPathTraversal(t *testing.T) {
	for _, evil := range []string{
		"package/img/test/64/../../../../evil.png",
		"../evil.png",
		"/tmp/evil.png",
		`package\..\..\evil.png`,
	} {
		t.Run(evil, func(t *testing.T) {
			tgz, set := fakeEmojiPackage(t, tarEntry{name: evil, body: []byte("x")})
			root := filepath.Join(t.TempDir(), "a", "b")
			require.NoError(t, os.MkdirAll(root, 0o755))
			_, err := installEmojiSet(tgz, set, root, nil)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "unsafe path")
			assert.NoFileExists(t, filepath.Join(root, "..", "..", "evil.png"))
			assert.NoFileExists(t, filepath.Join(root, "..", "evil.png"))
			assert.NoDirExists(t, filepath.Join(root, "test"))
			top, err := os.ReadDir(root)
			require.NoError(t, err)
			assert.Empty(t, top, "the work folder is removed")
		})
	}
}

func TestInstallEmojiSetNotAPackage(t *testing.T) {
	tgz := writeTGZ(t, t.TempDir(), "x.tgz", []tarEntry{{name: "package/README.md", body: []byte("hi")}})
	integrity, err := integrityOf(tgz)
	require.NoError(t, err)
	_, err = installEmojiSet(tgz, emojiSet{name: "test", integrity: integrity}, t.TempDir(), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not an emoji-datasource package")

	notGzip := filepath.Join(t.TempDir(), "y.tgz")
	require.NoError(t, os.WriteFile(notGzip, []byte("plain text"), 0o644))
	integrity, err = integrityOf(notGzip)
	require.NoError(t, err)
	_, err = installEmojiSet(notGzip, emojiSet{name: "test", integrity: integrity}, t.TempDir(), nil)
	require.Error(t, err)
}

func TestFetchEmojiKeepsCompleteSets(t *testing.T) {
	// With every pinned set stamped complete, FetchEmoji neither runs npm
	// nor touches the files; it also clears an interrupted fetch's folder.
	root := t.TempDir()
	for _, s := range emojiSets {
		writeTestFile(t, root, s.name+"/"+emojiStamp, []byte(s.stamp()))
	}
	writeTestFile(t, root, ".unpack-twitter-123/1f600.png", []byte("partial"))
	t.Setenv("PATH", t.TempDir()) // no npm here
	var log bytes.Buffer
	require.NoError(t, FetchEmoji(root, &log))
	assert.Contains(t, log.String(), "emoji-datasource-twitter@16.0.0 already in")
	assert.Contains(t, log.String(), "emoji-datasource-google@16.0.0 already in")
	assert.NoDirExists(t, filepath.Join(root, ".unpack-twitter-123"))
}

func TestFetchEmojiWithoutNPM(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	err := FetchEmoji(t.TempDir(), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "apt-get install npm")
}

func TestEmojiCategoriesAndFilter(t *testing.T) {
	tgz, set := fakeEmojiPackage(t)
	root := t.TempDir()
	_, err := installEmojiSet(tgz, set, root, nil)
	require.NoError(t, err)
	// The real sets' folder names are what the readers look for.
	require.NoError(t, os.Rename(filepath.Join(root, "test"), filepath.Join(root, "twitter")))

	cats, err := EmojiCategories(root)
	require.NoError(t, err)
	assert.Equal(t, []string{
		"Smileys & Emotion", "face-smiling", "cat-face",
		"People & Body", "hand-fingers-open",
		"Animals & Nature", "animal-mammal", "animal-amphibian",
	}, cats)

	for _, c := range []struct {
		category string
		want     []string
	}{
		{"Animals & Nature", []string{"twitter/1f431.png", "twitter/1f438.png", "twitter/1f98a.png"}},
		{"animals & nature", []string{"twitter/1f431.png", "twitter/1f438.png", "twitter/1f98a.png"}},
		{"ANIMAL-MAMMAL", []string{"twitter/1f431.png", "twitter/1f98a.png"}},
		{"cat-face", []string{"twitter/1f639.png"}},
		{"People & Body", []string{"twitter/1f44b-1f3fb.png", "twitter/1f44b-1f3ff.png", "twitter/1f44b.png"}},
	} {
		filter, err := EmojiFilter(root, c.category)
		require.NoError(t, err, c.category)
		ds, err := LoadDir(root, LoadOptions{Size: 4, Filter: filter})
		require.NoError(t, err, c.category)
		assert.Equal(t, c.want, ds.Files, c.category)
	}

	_, err = EmojiFilter(root, "Dinosaurs")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"Dinosaurs"`)
	assert.Contains(t, err.Error(), "Animals & Nature")

	_, err = EmojiCategories(t.TempDir())
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "fetch it first"), err.Error())
}
