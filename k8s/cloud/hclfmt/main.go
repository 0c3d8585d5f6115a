// hclfmt checks Terraform files as `terraform fmt -check` would, with the
// HCL library Terraform formats with (hclwrite): every file given must parse
// and be in canonical format already. Terraform itself cannot be built from
// the Go module proxy (its go.mod has replace directives, which `go
// install` refuses), and its release downloads are not reachable here.
//
//	go run . FILE.tf...
package main

import (
	"bytes"
	"fmt"
	"os"

	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclwrite"
)

func main() {
	parser := hclparse.NewParser()
	bad := false
	for _, path := range os.Args[1:] {
		src, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			bad = true
			continue
		}
		if _, diags := parser.ParseHCL(src, path); diags.HasErrors() {
			fmt.Fprintf(os.Stderr, "%s: does not parse: %s\n", path, diags.Error())
			bad = true
			continue
		}
		if !bytes.Equal(hclwrite.Format(src), src) {
			fmt.Fprintf(os.Stderr, "%s: not in canonical format (terraform fmt)\n", path)
			bad = true
		}
	}
	if bad {
		os.Exit(1)
	}
	fmt.Printf("hclfmt: %d files parse and are formatted\n", len(os.Args)-1)
}
