//go:build ignore

// gen compiles every shaders/*.comp to SPIR-V with glslc. A source line
//
//	// vkgan:variant SUFFIX -DNAME=VALUE ...
//
// also builds NAME_SUFFIX.spv with those defines. Usage (from shaders/):
//
//	go run gen.go [-out DIR] [-validate]
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

func main() {
	out := flag.String("out", "spv", "output directory")
	validate := flag.Bool("validate", false, "run spirv-val on each output")
	flag.Parse()
	srcs, err := filepath.Glob("*.comp")
	if err != nil || len(srcs) == 0 {
		fatal("no *.comp sources in %s", mustWd())
	}
	sort.Strings(srcs)
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fatal("%v", err)
	}
	for _, src := range srcs {
		base := strings.TrimSuffix(src, ".comp")
		builds := map[string][]string{base: nil}
		variants, err := readVariants(src)
		if err != nil {
			fatal("%s: %v", src, err)
		}
		for suffix, defs := range variants {
			builds[base+"_"+suffix] = defs
		}
		for name, defs := range builds {
			dst := filepath.Join(*out, name+".spv")
			args := append([]string{"--target-env=vulkan1.1", "-O", "-I", "."}, defs...)
			args = append(args, "-o", dst, src)
			if b, err := exec.Command("glslc", args...).CombinedOutput(); err != nil {
				fatal("glslc %s: %v\n%s", strings.Join(args, " "), err, b)
			}
			if *validate {
				if b, err := exec.Command("spirv-val", "--target-env", "vulkan1.1", dst).CombinedOutput(); err != nil {
					fatal("spirv-val %s: %v\n%s", dst, err, b)
				}
			}
		}
	}
}

func readVariants(path string) (map[string][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	v := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		rest, ok := strings.CutPrefix(line, "// vkgan:variant ")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) < 2 {
			return nil, fmt.Errorf("variant line %q needs a suffix and defines", line)
		}
		v[fields[0]] = fields[1:]
	}
	return v, sc.Err()
}

func mustWd() string { wd, _ := os.Getwd(); return wd }

func fatal(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "shaders/gen: "+format+"\n", a...)
	os.Exit(1)
}
