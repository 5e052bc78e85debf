// Command gen writes the doc comments of the module's config struct fields into a Go file
// (go generate ./config/), for the configuration reference.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/chatplat/job-service/internal/fielddoc"
)

func main() {
	root := flag.String("root", "..", "module root")
	module := flag.String("module", "github.com/chatplat/job-service", "module import path")
	pkg := flag.String("pkg", "config", "package of the generated file")
	out := flag.String("out", "fielddoc_gen.go", "file to write")
	flag.Parse()
	docs, err := fielddoc.Extract(*root, *module)
	var src []byte
	if err == nil {
		src, err = fielddoc.Source(*pkg, docs)
	}
	if err == nil {
		err = os.WriteFile(*out, src, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fielddoc:", err)
		os.Exit(1)
	}
}
