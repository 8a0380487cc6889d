//go:build ignore

// gen compiles every shaders/*.comp to SPIR-V with glslc. A source line
//
//	// vkgan:variant SUFFIX -DNAME=VALUE ...
//
// also builds NAME_SUFFIX.spv with those defines. It then writes the Go
// side of each build's interface, read from the same preprocessed source
// and checked against the module (internal/kernelgen): a descriptor (name,
// bindings, specialization constants) and a push-constant struct, into one
// gofmt-ed file. Usage (from shaders/):
//
//	go run gen.go [-out DIR] [-go FILE] [-validate]
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

	"vkgan/shaders/internal/kernelgen"
)

func main() {
	out := flag.String("out", "spv", "output directory")
	goOut := flag.String("go", "zkernels.go", "the generated Go kernel table")
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
	var all []*kernelgen.Shader
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
		names := make([]string, 0, len(builds))
		for name := range builds {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			dst := filepath.Join(*out, name+".spv")
			args := append([]string{"--target-env=vulkan1.1", "-O", "-I", "."}, builds[name]...)
			args = append(args, "-o", dst, src)
			if b, err := exec.Command("glslc", args...).CombinedOutput(); err != nil {
				fatal("glslc %s: %v\n%s", strings.Join(args, " "), err, b)
			}
			if *validate {
				if b, err := exec.Command("spirv-val", "--target-env", "vulkan1.1", dst).CombinedOutput(); err != nil {
					fatal("spirv-val %s: %v\n%s", dst, err, b)
				}
			}
			// The interface is read after the preprocessor, with the
			// build's defines, so #ifdef variants and macros are resolved.
			pre := append([]string{"--target-env=vulkan1.1", "-E", "-I", "."}, builds[name]...)
			pre = append(pre, src)
			cmd := exec.Command("glslc", pre...)
			cmd.Stderr = os.Stderr
			text, err := cmd.Output()
			if err != nil {
				fatal("glslc %s: %v", strings.Join(pre, " "), err)
			}
			sh, err := kernelgen.Parse(name, src, string(text))
			if err != nil {
				fatal("%v", err)
			}
			module, err := os.ReadFile(dst)
			if err != nil {
				fatal("%v", err)
			}
			if err := kernelgen.CheckSPIRV(sh, module); err != nil {
				fatal("%v", err)
			}
			all = append(all, sh)
		}
	}
	code, err := kernelgen.Generate(all)
	if err != nil {
		fatal("%v", err)
	}
	if err := os.WriteFile(*goOut, code, 0o644); err != nil {
		fatal("%v", err)
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
