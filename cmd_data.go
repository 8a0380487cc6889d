package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"vkgan/train/data"
)

func dataCmd(fs *flag.FlagSet) func() error {
	root := fs.String("out", "", "where to put the emoji set (default data/emoji, or VKGAN_DATA)")
	list := fs.Bool("categories", false, "list the emoji categories usable with train -category")
	return func() error {
		if len(cmdArgs) != 1 || cmdArgs[0] != "emoji" {
			return errors.New(`data: the only data set is "emoji": vkgan data emoji`)
		}
		dir := data.EmojiRoot(*root)
		if err := data.FetchEmoji(dir, stderr); err != nil {
			return err
		}
		if *list {
			cats, err := data.EmojiCategories(dir)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, strings.Join(cats, "\n"))
			return nil
		}
		fmt.Fprintf(stdout, "emoji images in %s (Twemoji CC-BY 4.0, Noto Emoji Apache 2.0)\n", dir)
		return nil
	}
}
