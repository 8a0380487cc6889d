package data

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"vkgan/internal/progress"
)

// emojiSet is one npm package of emoji images, pinned by version and by the
// tarball's integrity (as npm and the registry report it), so a fetch gets
// exactly the bytes these were checked against.
type emojiSet struct {
	name      string // folder under the root, and the folder in package/img/
	pkg       string
	version   string
	integrity string // "sha512-" + base64 of the tarball's SHA-512
	images    int    // PNGs in package/img/<name>/64/, for the progress total
}

var emojiSets = []emojiSet{
	{ // Twemoji graphics, CC-BY 4.0.
		name:      "twitter",
		pkg:       "emoji-datasource-twitter",
		version:   "16.0.0",
		integrity: "sha512-7F+uCuHH+7Qnrc15P5tnbvKkg9E6tlzi4MnT2uW1RlN4pLYTza6cP/dstIfSDMtpjFLWuZewWg8jBbuL2eyELQ==",
		images:    3786,
	},
	{ // Noto Emoji graphics, Apache 2.0.
		name:      "google",
		pkg:       "emoji-datasource-google",
		version:   "16.0.0",
		integrity: "sha512-ZRexfzs7MVoLnmzZmNsO4TKhnAJp5D++Vm6PpUpH/jEQQlemp3l88CjZ+DoZ2faM9R4QxZkOPJCoT8DlPhfQ3A==",
		images:    3786,
	},
}

func (s emojiSet) id() string { return s.pkg + "@" + s.version }

const (
	emojiJSON = "emoji.json"
	// emojiStamp marks a complete set; it holds the package id and
	// integrity, so a set from another version is fetched again.
	emojiStamp = ".complete"
	// emojiMaxEntry bounds any one extracted file (the largest, emoji.json,
	// is about 1.3 MB), so a bad archive cannot fill the disk.
	emojiMaxEntry = 64 << 20
)

// FetchEmoji downloads the Twemoji and Noto emoji image sets with `npm pack`
// (emoji-datasource-twitter@16.0.0, emoji-datasource-google@16.0.0), checks each
// tarball against a pinned integrity (sha512, the "integrity" field npm prints /
// the registry reports), and unpacks only the 64x64 PNGs and emoji.json into
// root/twitter/ and root/google/. Idempotent: a complete existing set is kept.
//
// Each set is unpacked into a hidden folder under root and renamed into
// place when complete, so an interrupted fetch never leaves a partial set
// that looks whole (LoadDir skips hidden folders).
func FetchEmoji(root string, progress io.Writer) error {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("train: emoji: %w", err)
	}
	removeStaleTemps(root)
	for _, s := range emojiSets {
		if emojiSetComplete(root, s) {
			if progress != nil {
				fmt.Fprintf(progress, "emoji: %s already in %s\n", s.id(), filepath.Join(root, s.name))
			}
			continue
		}
		start := time.Now()
		if progress != nil {
			fmt.Fprintf(progress, "emoji: fetching %s with npm pack\n", s.id())
		}
		tgz, cleanup, err := npmPack(s)
		if err != nil {
			return err
		}
		n, err := installEmojiSet(tgz, s, root, progress)
		cleanup()
		if err != nil {
			return err
		}
		if progress != nil {
			fmt.Fprintf(progress, "emoji: %d images of %s in %s (%.1fs)\n", n, s.id(), filepath.Join(root, s.name), time.Since(start).Seconds())
		}
	}
	return nil
}

// emojiSetComplete reports whether root holds the set, stamped with this
// package version and integrity.
func emojiSetComplete(root string, s emojiSet) bool {
	b, err := os.ReadFile(filepath.Join(root, s.name, emojiStamp))
	return err == nil && string(b) == s.stamp()
}

func (s emojiSet) stamp() string { return s.id() + " " + s.integrity + "\n" }

// removeStaleTemps deletes the hidden work folders an interrupted fetch
// left in root.
func removeStaleTemps(root string) {
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		if e.IsDir() && (strings.HasPrefix(e.Name(), ".unpack-") || strings.HasPrefix(e.Name(), ".old-")) {
			os.RemoveAll(filepath.Join(root, e.Name()))
		}
	}
}

// npmPack downloads the set's tarball into a temporary folder; cleanup
// removes it.
func npmPack(s emojiSet) (tgz string, cleanup func(), err error) {
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", nil, errors.New("train: emoji: npm not found; install Node.js and npm (Debian: apt-get install npm) to fetch the emoji images")
	}
	dir, err := os.MkdirTemp("", "vkgan-npm-")
	if err != nil {
		return "", nil, fmt.Errorf("train: emoji: %w", err)
	}
	cleanup = func() { os.RemoveAll(dir) }
	cmd := exec.Command(npm, "pack", "--silent", s.id())
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		cleanup()
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2000 {
			msg = "..." + msg[len(msg)-2000:]
		}
		return "", nil, fmt.Errorf("train: emoji: npm pack %s: %v: %s (is the npm registry reachable?)", s.id(), err, msg)
	}
	tgz = filepath.Join(dir, s.pkg+"-"+s.version+".tgz")
	if _, err := os.Stat(tgz); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("train: emoji: npm pack %s left no %s", s.id(), filepath.Base(tgz))
	}
	return tgz, cleanup, nil
}

// integrityOf returns a file's integrity in npm's form, "sha512-<base64>".
func integrityOf(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha512.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return "sha512-" + base64.StdEncoding.EncodeToString(h.Sum(nil)), nil
}

// installEmojiSet checks tgz against s.integrity and unpacks its 64x64 PNGs
// and emoji.json into root/s.name, replacing what was there. It returns the
// number of images.
func installEmojiSet(tgz string, s emojiSet, root string, progress io.Writer) (int, error) {
	got, err := integrityOf(tgz)
	if err != nil {
		return 0, fmt.Errorf("train: emoji: %w", err)
	}
	if got != s.integrity {
		return 0, fmt.Errorf("train: emoji: %s tarball has integrity %s, want %s; the download is damaged or not the pinned package (clear npm's cache with `npm cache clean --force` and try again)",
			s.id(), got, s.integrity)
	}

	tmp, err := os.MkdirTemp(root, ".unpack-"+s.name+"-")
	if err != nil {
		return 0, fmt.Errorf("train: emoji: %w", err)
	}
	defer os.RemoveAll(tmp) // after the rename this is a no-op
	// MkdirTemp makes the folder private; the data set is ordinary files.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return 0, fmt.Errorf("train: emoji: %w", err)
	}
	n, err := extractEmoji(tgz, s, tmp, progress)
	if err != nil {
		return 0, err
	}
	if err := os.WriteFile(filepath.Join(tmp, emojiStamp), []byte(s.stamp()), 0o644); err != nil {
		return 0, fmt.Errorf("train: emoji: %w", err)
	}

	// Move any old set aside first: rename cannot replace a non-empty
	// folder.
	final := filepath.Join(root, s.name)
	old := ""
	if _, err := os.Lstat(final); err == nil {
		old = filepath.Join(root, ".old-"+filepath.Base(tmp))
		if err := os.Rename(final, old); err != nil {
			return 0, fmt.Errorf("train: emoji: replacing %s: %w", final, err)
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		return 0, fmt.Errorf("train: emoji: %w", err)
	}
	if old != "" {
		os.RemoveAll(old)
	}
	return n, nil
}

// extractEmoji unpacks package/img/<set>/64/*.png and package/emoji.json
// from tgz into dir, flat. Every other entry is skipped; an entry whose
// path would leave the package is an error, since a pinned tarball never
// has one.
func extractEmoji(tgz string, s emojiSet, dir string, log io.Writer) (int, error) {
	f, err := os.Open(tgz)
	if err != nil {
		return 0, fmt.Errorf("train: emoji: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return 0, fmt.Errorf("train: emoji: %s: %w", filepath.Base(tgz), err)
	}
	tr := tar.NewReader(zr)
	imgDir := "package/img/" + s.name + "/64/"
	prog := progress.New(log, "emoji: unpacking "+s.name, s.images)
	defer prog.Done()
	images, sawJSON := 0, false
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("train: emoji: %s: %w", filepath.Base(tgz), err)
		}
		name := hdr.Name
		if strings.Contains(name, `\`) || path.IsAbs(name) || !fs.ValidPath(strings.TrimSuffix(name, "/")) {
			return 0, fmt.Errorf("train: emoji: %s: unsafe path %q in archive", filepath.Base(tgz), name)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue // folders, links: nothing we need
		}
		var out string
		switch {
		case name == "package/"+emojiJSON:
			out, sawJSON = emojiJSON, true
		case strings.HasPrefix(name, imgDir) && strings.HasSuffix(name, ".png"):
			base := name[len(imgDir):]
			if strings.Contains(base, "/") || strings.HasPrefix(base, ".") {
				continue
			}
			out = base
			images++
		default:
			continue
		}
		if hdr.Size > emojiMaxEntry {
			return 0, fmt.Errorf("train: emoji: %s: entry %s is %d bytes, more than an emoji image set holds", filepath.Base(tgz), name, hdr.Size)
		}
		if err := writeEntry(filepath.Join(dir, out), tr, hdr.Size); err != nil {
			return 0, fmt.Errorf("train: emoji: %s: %w", name, err)
		}
		if out != emojiJSON {
			prog.Add(1)
		}
	}
	if images == 0 || !sawJSON {
		return 0, fmt.Errorf("train: emoji: %s has %d images under %s and emoji.json present: %v; it is not an emoji-datasource package",
			filepath.Base(tgz), images, imgDir, sawJSON)
	}
	return images, nil
}

func writeEntry(dst string, r io.Reader, size int64) error {
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, io.LimitReader(r, size))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != size {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// emojiEntry is the part of an emoji.json record the filter needs.
type emojiEntry struct {
	Image          string `json:"image"`
	Category       string `json:"category"`
	Subcategory    string `json:"subcategory"`
	SortOrder      int    `json:"sort_order"`
	SkinVariations map[string]struct {
		Image string `json:"image"`
	} `json:"skin_variations"`
}

// readEmojiJSON reads emoji.json from the first set found under root.
func readEmojiJSON(root string) ([]emojiEntry, error) {
	for _, s := range emojiSets {
		b, err := os.ReadFile(filepath.Join(root, s.name, emojiJSON))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("train: emoji: %w", err)
		}
		var entries []emojiEntry
		if err := json.Unmarshal(b, &entries); err != nil {
			return nil, fmt.Errorf("train: emoji: %s: %w", filepath.Join(root, s.name, emojiJSON), err)
		}
		slices.SortStableFunc(entries, func(a, b emojiEntry) int { return a.SortOrder - b.SortOrder })
		return entries, nil
	}
	return nil, fmt.Errorf("train: emoji: no emoji set under %q; fetch it first (vkgan data emoji)", root)
}

// EmojiCategories lists the categories (and subcategories) in the fetched emoji.json.
// Each category comes first, then its subcategories, in emoji.json's sort
// order: "Smileys & Emotion", "face-smiling", ..., "Animals & Nature",
// "animal-mammal", .... Every name is a valid EmojiFilter argument.
func EmojiCategories(root string) ([]string, error) {
	entries, err := readEmojiJSON(root)
	if err != nil {
		return nil, err
	}
	var cats []string
	subs := map[string][]string{}
	seen := map[string]bool{}
	for _, e := range entries {
		if !seen["c:"+e.Category] {
			seen["c:"+e.Category] = true
			cats = append(cats, e.Category)
		}
		if !seen["s:"+e.Subcategory] {
			seen["s:"+e.Subcategory] = true
			subs[e.Category] = append(subs[e.Category], e.Subcategory)
		}
	}
	var out []string
	for _, c := range cats {
		out = append(out, c)
		out = append(out, subs[c]...)
	}
	return out, nil
}

// EmojiFilter returns a LoadOptions.Filter that keeps only images of the given
// category or subcategory (case-insensitive match on emoji.json's "category" or
// "subcategory", e.g. "Animals & Nature" or "animal-mammal").
// Skin-tone variants belong to their base emoji's category. The filter
// matches file names in any set folder, so it serves LoadDir on root.
func EmojiFilter(root, category string) (func(rel string) bool, error) {
	entries, err := readEmojiJSON(root)
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{}
	for _, e := range entries {
		if !strings.EqualFold(e.Category, category) && !strings.EqualFold(e.Subcategory, category) {
			continue
		}
		keep[e.Image] = true
		for _, v := range e.SkinVariations {
			keep[v.Image] = true
		}
	}
	if len(keep) == 0 {
		var cats []string
		for _, e := range entries {
			if !slices.Contains(cats, e.Category) {
				cats = append(cats, e.Category)
			}
		}
		return nil, fmt.Errorf("train: emoji: no category or subcategory %q; choose one of %q or a subcategory such as \"animal-mammal\"", category, cats)
	}
	return func(rel string) bool { return keep[path.Base(rel)] }, nil
}
