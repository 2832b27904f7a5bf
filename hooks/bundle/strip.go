package bundle

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
)

// appspecNames are the file names CodeDeploy looks for.
var appspecNames = [...]string{"appspec.yml", "appspec.yaml"}

func hasAppspec(root *os.Root, dir string) bool {
	for _, n := range appspecNames {
		p := n
		if dir != "" {
			p = dir + "/" + n
		}
		if _, err := root.Lstat(p); err == nil {
			return true
		}
	}
	return false
}

// strip applies CodeDeploy's nested-appspec rule: if the root holds no
// appspec and exactly one top-level directory does, that directory's contents
// become the root and everything else is dropped.
func (x *extractor) strip() error {
	if hasAppspec(x.root, "") {
		return nil
	}
	top, err := readDirNames(x.root, ".")
	if err != nil {
		return err
	}
	nested := ""
	for _, n := range top {
		fi, err := x.root.Lstat(n)
		if err != nil || !fi.IsDir() || !hasAppspec(x.root, n) {
			continue
		}
		if nested != "" {
			return nil // several candidates: CodeDeploy does not strip either
		}
		nested = n
	}
	if nested == "" {
		return nil
	}
	inner, err := readDirNames(x.root, nested)
	if err != nil {
		return err
	}
	taken := make(map[string]bool, len(top)+len(inner))
	for _, n := range top {
		taken[n] = true
	}
	for _, n := range inner {
		taken[n] = true
	}
	tmp := ""
	for tmp == "" || taken[tmp] {
		var b [8]byte
		_, _ = rand.Read(b[:])
		tmp = ".drover-strip-" + hex.EncodeToString(b[:])
	}
	if err := x.root.Rename(nested, tmp); err != nil {
		return fmt.Errorf("strip top-level directory %q: %w", nested, err)
	}
	for _, n := range top {
		if n == nested {
			continue
		}
		if err := x.root.RemoveAll(n); err != nil {
			return fmt.Errorf("strip top-level directory %q: remove sibling %q: %w", nested, n, err)
		}
	}
	for _, n := range inner {
		if err := x.root.Rename(tmp+"/"+n, n); err != nil {
			return fmt.Errorf("strip top-level directory %q: %w", nested, err)
		}
	}
	if err := x.root.Remove(tmp); err != nil {
		return fmt.Errorf("strip top-level directory %q: %w", nested, err)
	}
	prefix := nested + "/"
	dirs := make(map[string]dirMeta, len(x.dirs))
	for n, m := range x.dirs {
		if rest, ok := strings.CutPrefix(n, prefix); ok {
			dirs[rest] = m
		}
	}
	x.dirs = dirs
	x.kinds = nil // no longer describes the tree; nothing uses it after finish
	return nil
}

func readDirNames(root *os.Root, dir string) ([]string, error) {
	d, err := root.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}
