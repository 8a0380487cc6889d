package data

import (
	"os"
	"path/filepath"
)

// A Source is a set of images a run can train on. There are two: a Folder
// and the Emoji set. A new one is a type with this method in a file of
// its own, and a case in Open for the -data value that names it.
type Source interface {
	// Load decodes the source's images as opt says (opt.Size x opt.Size,
	// cached in opt.CacheDir), fetching them first if it must.
	Load(opt LoadOptions) (*Dataset, error)
}

var (
	_ Source = Folder("")
	_ Source = Emoji{}
)

// Open returns the source a -data value names: "emoji" is the emoji set in
// EmojiRoot(emojiRoot), kept to category when that is not ""; anything
// else is a folder of images.
func Open(name, category, emojiRoot string) Source {
	if name == "emoji" {
		return Emoji{Root: EmojiRoot(emojiRoot), Category: category}
	}
	return Folder(name)
}

// Folder is every image under a directory: see LoadDir.
type Folder string

// Load implements Source.
// With opt.Labels each image's class is the first folder of its path
// under the root (cats/a.png and cats/old/b.png are both "cats").
func (f Folder) Load(opt LoadOptions) (*Dataset, error) {
	ds, err := LoadDir(string(f), opt)
	if err != nil || !opt.Labels {
		return ds, err
	}
	return ds, labelByFolder(ds, string(f))
}

// Emoji is the emoji set (see FetchEmoji), fetched on first use.
type Emoji struct {
	Root string // where the set is or goes: see EmojiRoot
	// Category keeps only the images of a category or subcategory of
	// emoji.json (see EmojiFilter); "" is all of them.
	Category string
}

// Load implements Source: it fetches the set into e.Root if it is not
// there yet, reporting to opt.Progress, and decodes it. With opt.Labels
// each image's class is its emoji.json category ("Animals & Nature"),
// or, when e.Category names a category, its subcategory within it
// ("animal-mammal"); see labelEmoji.
func (e Emoji) Load(opt LoadOptions) (*Dataset, error) {
	if err := FetchEmoji(e.Root, opt.Progress); err != nil {
		return nil, err
	}
	if e.Category != "" {
		f, err := EmojiFilter(e.Root, e.Category)
		if err != nil {
			return nil, err
		}
		opt.Filter = f
	}
	ds, err := LoadDir(e.Root, opt)
	if err != nil || !opt.Labels {
		return ds, err
	}
	return ds, labelEmoji(ds, e.Root, e.Category)
}

// EmojiRoot is the emoji set's directory: dir when it is not "", else
// $VKGAN_DATA, else data/emoji.
func EmojiRoot(dir string) string {
	if dir != "" {
		return dir
	}
	if v := os.Getenv("VKGAN_DATA"); v != "" {
		return v
	}
	return filepath.Join("data", "emoji")
}
