package data

import (
	"bytes"
	"image/color"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// makeClassSet writes PNGs into class subfolders (one in a subfolder of
// its class's folder) and returns the root.
func makeClassSet(t *testing.T, rels ...string) string {
	t.Helper()
	dir := t.TempDir()
	for i, rel := range rels {
		writeTestFile(t, dir, rel, encodePNG(t, solid(5, 5, color.NRGBA{uint8(30 * i), 90, 200, 255})))
	}
	return dir
}

func TestFolderLabels(t *testing.T) {
	dir := makeClassSet(t, "cats/a.png", "cats/old/b.png", "dogs/c.png", "birds/d.png", "dogs/e.png")
	writeTestFile(t, dir, "dogs/notes.txt", []byte("not an image"))
	cache := t.TempDir()
	opt := LoadOptions{Size: 4, CacheDir: cache, Labels: true}

	ds, err := Folder(dir).Load(opt)
	require.NoError(t, err)
	assert.False(t, ds.FromCache)
	assert.Equal(t, []string{"birds/d.png", "cats/a.png", "cats/old/b.png", "dogs/c.png", "dogs/e.png"}, ds.Files)
	assert.Equal(t, []string{"birds", "cats", "dogs"}, ds.Classes)
	assert.Equal(t, []int32{0, 1, 1, 2, 2}, ds.Labels)
	assert.Equal(t, []int{1, 2, 2}, ds.ClassCounts())

	// The labels come from the file list: the cache (one file, written
	// by the labelled load) serves both loads, and the pixels and Hash
	// are those of an unlabelled load.
	plain, err := Folder(dir).Load(LoadOptions{Size: 4, CacheDir: cache})
	require.NoError(t, err)
	assert.True(t, plain.FromCache)
	assert.Nil(t, plain.Classes)
	assert.Nil(t, plain.Labels)
	assert.Nil(t, plain.ClassCounts())
	assert.Equal(t, ds.Pixels, plain.Pixels)
	assert.Equal(t, ds.Hash(), plain.Hash())
	again, err := Folder(dir).Load(opt)
	require.NoError(t, err)
	assert.True(t, again.FromCache)
	assert.Equal(t, ds.Labels, again.Labels)
	assert.Equal(t, ds.Classes, again.Classes)
	assert.Len(t, cacheFiles(t, cache), 1)

	// LoadDir alone does not label.
	raw, err := LoadDir(dir, opt)
	require.NoError(t, err)
	assert.Nil(t, raw.Labels)
}

func TestFolderLabelErrors(t *testing.T) {
	loose := makeClassSet(t, "cats/a.png", "dogs/b.png", "stray.png")
	_, err := Folder(loose).Load(LoadOptions{Size: 4, Labels: true})
	require.ErrorContains(t, err, "one subfolder per class")
	require.ErrorContains(t, err, `"stray.png"`)
	// Without labels the same folder loads.
	_, err = Folder(loose).Load(LoadOptions{Size: 4})
	require.NoError(t, err)

	one := makeClassSet(t, "cats/a.png", "cats/b.png")
	_, err = Folder(one).Load(LoadOptions{Size: 4, Labels: true})
	require.ErrorContains(t, err, "at least 2 classes")
	require.ErrorContains(t, err, `["cats"]`)
}

// emojiRootForLabels installs the fake emoji package as the twitter set,
// stamps every pinned set complete (so Load runs no npm), and returns the
// root.
func emojiRootForLabels(t *testing.T) string {
	t.Helper()
	tgz, set := fakeEmojiPackage(t)
	root := t.TempDir()
	_, err := installEmojiSet(tgz, set, root, nil)
	require.NoError(t, err)
	require.NoError(t, os.Rename(filepath.Join(root, "test"), filepath.Join(root, "twitter")))
	for _, s := range emojiSets {
		writeTestFile(t, root, s.name+"/"+emojiStamp, []byte(s.stamp()))
	}
	t.Setenv("PATH", t.TempDir()) // no npm here
	return root
}

func TestEmojiLabels(t *testing.T) {
	root := emojiRootForLabels(t)
	var log bytes.Buffer
	ds, err := Emoji{Root: root}.Load(LoadOptions{Size: 4, Labels: true, Progress: &log})
	require.NoError(t, err)
	assert.Equal(t, []string{
		"twitter/1f431.png", "twitter/1f438.png", "twitter/1f44b-1f3fb.png", "twitter/1f44b-1f3ff.png",
		"twitter/1f44b.png", "twitter/1f600.png", "twitter/1f639.png", "twitter/1f98a.png",
	}, ds.Files)
	assert.Equal(t, []string{"Animals & Nature", "People & Body", "Smileys & Emotion"}, ds.Classes)
	// Skin-tone variants are their base emoji's class.
	assert.Equal(t, []int32{0, 0, 1, 1, 1, 2, 2, 0}, ds.Labels)
	assert.Equal(t, []int{3, 3, 2}, ds.ClassCounts())

	// Kept to a category, the classes are its subcategories.
	ds, err = Emoji{Root: root, Category: "animals & nature"}.Load(LoadOptions{Size: 4, Labels: true})
	require.NoError(t, err)
	assert.Equal(t, []string{"twitter/1f431.png", "twitter/1f438.png", "twitter/1f98a.png"}, ds.Files)
	assert.Equal(t, []string{"animal-amphibian", "animal-mammal"}, ds.Classes)
	assert.Equal(t, []int32{1, 0, 1}, ds.Labels)

	// A subcategory is one class.
	_, err = Emoji{Root: root, Category: "animal-mammal"}.Load(LoadOptions{Size: 4, Labels: true})
	require.ErrorContains(t, err, "at least 2 classes")
	require.ErrorContains(t, err, "choose a category")

	// An image emoji.json does not list has no class.
	writeTestFile(t, root, "twitter/ffff.png", encodePNG(t, solid(4, 4, color.NRGBA{1, 2, 3, 255})))
	_, err = Emoji{Root: root}.Load(LoadOptions{Size: 4, Labels: true})
	require.ErrorContains(t, err, `"twitter/ffff.png" has no entry in emoji.json`)
	_, err = Emoji{Root: root}.Load(LoadOptions{Size: 4})
	require.NoError(t, err, "unlabelled, the extra image is just an image")
}
