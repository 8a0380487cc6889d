package data

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// Class labels for conditional training. They are derived from
// Dataset.Files once the images are loaded (decoded or from the cache),
// so the cache file and Dataset.Hash are the same with or without them.

// ClassCounts returns the number of images of each class, indexed as
// Classes; nil for an unlabelled set.
func (d *Dataset) ClassCounts() []int {
	if len(d.Classes) == 0 {
		return nil
	}
	counts := make([]int, len(d.Classes))
	for _, l := range d.Labels {
		counts[l]++
	}
	return counts
}

// setClasses fills ds.Classes (sorted) and ds.Labels from each image's
// class name; where names the source in the error for fewer than two.
func setClasses(ds *Dataset, classOf []string, where string) error {
	classes := slices.Clone(classOf)
	slices.Sort(classes)
	classes = slices.Compact(classes)
	if len(classes) < 2 {
		return fmt.Errorf("train: conditional training needs at least 2 classes; %s has %d (%q)", where, len(classes), classes)
	}
	labels := make([]int32, len(classOf))
	for i, c := range classOf {
		k, _ := slices.BinarySearch(classes, c)
		labels[i] = int32(k)
	}
	ds.Classes, ds.Labels = classes, labels
	return nil
}

// labelByFolder labels each image of a folder set by the first element of
// its path under dir.
func labelByFolder(ds *Dataset, dir string) error {
	classOf := make([]string, len(ds.Files))
	for i, rel := range ds.Files {
		class, _, ok := strings.Cut(rel, "/")
		if !ok {
			return fmt.Errorf("train: conditional training needs one subfolder per class under %q (cats/, dogs/, ...), but %q lies directly in it; move every image into its class's folder",
				dir, rel)
		}
		classOf[i] = class
	}
	return setClasses(ds, classOf, fmt.Sprintf("%q (one per subfolder)", dir))
}

// labelEmoji labels each emoji image by its emoji.json category, or, when
// category names a category rather than a subcategory (so every image
// shares it), by its subcategory. Skin-tone variants take their base
// emoji's class, as EmojiFilter does.
func labelEmoji(ds *Dataset, root, category string) error {
	entries, err := readEmojiJSON(root)
	if err != nil {
		return err
	}
	bySub := false
	for _, e := range entries {
		if category != "" && strings.EqualFold(e.Category, category) {
			bySub = true
			break
		}
	}
	classOfImage := map[string]string{}
	for _, e := range entries {
		class := e.Category
		if bySub {
			class = e.Subcategory
		}
		classOfImage[e.Image] = class
		for _, v := range e.SkinVariations {
			classOfImage[v.Image] = class
		}
	}
	classOf := make([]string, len(ds.Files))
	for i, rel := range ds.Files {
		class, ok := classOfImage[path.Base(rel)]
		if !ok {
			return fmt.Errorf("train: emoji: %q has no entry in emoji.json, so it has no class; remove it or refetch the set", rel)
		}
		classOf[i] = class
	}
	where := "the emoji set (its emoji.json categories)"
	switch {
	case bySub:
		where = fmt.Sprintf("emoji category %q (its subcategories)", category)
	case category != "":
		where = fmt.Sprintf("emoji subcategory %q (choose a category, such as \"Animals & Nature\", or none)", category)
	}
	return setClasses(ds, classOf, where)
}
