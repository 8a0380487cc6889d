package data

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestOpen(t *testing.T) {
	t.Setenv("VKGAN_DATA", "")
	for _, tc := range []struct {
		name, category, root string
		want                 Source
	}{
		{"emoji", "", "", Emoji{Root: filepath.Join("data", "emoji")}},
		{"emoji", "animal-mammal", "/srv/emoji", Emoji{Root: "/srv/emoji", Category: "animal-mammal"}},
		{"pictures/cats", "", "/srv/emoji", Folder("pictures/cats")},
	} {
		assert.Equal(t, tc.want, Open(tc.name, tc.category, tc.root), "%q", tc.name)
	}
	t.Setenv("VKGAN_DATA", "/env/emoji")
	assert.Equal(t, Emoji{Root: "/env/emoji"}, Open("emoji", "", ""))
}

func TestFolderLoad(t *testing.T) {
	dir := makeSet(t)
	want, err := LoadDir(dir, LoadOptions{Size: 8})
	assert.NoError(t, err)
	got, err := Folder(dir).Load(LoadOptions{Size: 8})
	assert.NoError(t, err)
	assert.Equal(t, want, got)
}

func TestDatasetHash(t *testing.T) {
	a := &Dataset{N: 2, Size: 1, Pixels: []byte{1, 2, 3, 4, 5, 6}}
	b := &Dataset{N: 2, Size: 1, Pixels: []byte{1, 2, 3, 4, 5, 6}, Files: []string{"x", "y"}}
	assert.Equal(t, a.Hash(), b.Hash(), "only the pixels and their layout count")
	assert.Len(t, a.Hash(), 64)
	c := &Dataset{N: 2, Size: 1, Pixels: []byte{1, 2, 3, 4, 5, 7}}
	assert.NotEqual(t, a.Hash(), c.Hash())
	d := &Dataset{N: 1, Size: 2, Pixels: a.Pixels}
	assert.NotEqual(t, a.Hash(), d.Hash(), "the same bytes as other images")
}
