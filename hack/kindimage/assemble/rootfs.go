package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
)

// rootfs is the Debian root filesystem tarball the rootfs stage made, with
// an index of its entries.
type rootfs struct {
	file    string
	headers map[string]*tar.Header // by clean relative path
	small   map[string][]byte      // content of the files read in the first pass
}

// keepContent says which files the first pass keeps in memory.
func keepContent(name string) bool {
	return name == "var/lib/dpkg/status" || name == "etc/ssl/certs/ca-certificates.crt" ||
		(strings.HasPrefix(name, "var/lib/dpkg/info/") && strings.HasSuffix(name, ".list"))
}

func cleanName(n string) string {
	n = strings.TrimPrefix(path.Clean("/"+n), "/")
	if n == "" {
		return "."
	}
	return n
}

func openRootfs(file string) (*rootfs, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := &rootfs{file: file, headers: map[string]*tar.Header{}, small: map[string][]byte{}}
	tr := tar.NewReader(bufio.NewReaderSize(f, 1<<20))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		name := cleanName(h.Name)
		r.headers[name] = h
		if h.Typeflag == tar.TypeReg && keepContent(name) {
			b, err := io.ReadAll(tr)
			if err != nil {
				return nil, err
			}
			r.small[name] = b
		}
	}
	if _, ok := r.small["var/lib/dpkg/status"]; !ok {
		return nil, fmt.Errorf("%s: no var/lib/dpkg/status", file)
	}
	return r, nil
}

// canon resolves the symlinks among the parent directories of name (the
// merged-/usr links: lib64/ld-linux-x86-64.so.2 is
// usr/lib64/ld-linux-x86-64.so.2); the last element stays as it is.
func (r *rootfs) canon(name string) string {
	name = cleanName(name)
	for range 40 {
		parts := strings.Split(name, "/")
		changed := false
		for i := 1; i < len(parts); i++ {
			prefix := strings.Join(parts[:i], "/")
			h, ok := r.headers[prefix]
			if !ok || h.Typeflag != tar.TypeSymlink {
				continue
			}
			target := h.Linkname
			if !path.IsAbs(target) {
				target = path.Join(path.Dir("/"+prefix), target)
			}
			name = cleanName(path.Join(target, strings.Join(parts[i:], "/")))
			changed = true
			break
		}
		if !changed {
			return name
		}
	}
	return name
}

// dpkgPackage is one installed package of the status file.
type dpkgPackage struct {
	name     string
	depends  [][]string // alternatives per dependency
	provides []string
}

func (r *rootfs) packages() map[string]*dpkgPackage {
	pkgs := map[string]*dpkgPackage{}
	for _, stanza := range strings.Split(string(r.small["var/lib/dpkg/status"]), "\n\n") {
		fields := map[string]string{}
		var last string
		for _, line := range strings.Split(stanza, "\n") {
			if strings.HasPrefix(line, " ") && last != "" {
				fields[last] += "\n" + line
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if ok {
				last = k
				fields[k] = strings.TrimSpace(v)
			}
		}
		if fields["Package"] == "" || !strings.HasSuffix(fields["Status"], " installed") {
			continue
		}
		p := &dpkgPackage{name: fields["Package"]}
		for _, f := range []string{"Pre-Depends", "Depends"} {
			for _, dep := range splitList(fields[f]) {
				var alts []string
				for _, a := range strings.Split(dep, "|") {
					alts = append(alts, pkgName(a))
				}
				p.depends = append(p.depends, alts)
			}
		}
		for _, pr := range splitList(fields["Provides"]) {
			p.provides = append(p.provides, pkgName(pr))
		}
		pkgs[p.name] = p
	}
	return pkgs
}

func splitList(s string) []string {
	var out []string
	for _, d := range strings.Split(s, ",") {
		if d = strings.TrimSpace(d); d != "" {
			out = append(out, d)
		}
	}
	return out
}

// pkgName strips a version constraint and an architecture qualifier.
func pkgName(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, " ("); i >= 0 {
		s = s[:i]
	}
	s, _, _ = strings.Cut(s, ":")
	return s
}

// closure returns roots and everything they depend on, installed, minus
// skip (packages a single-purpose image does not need: dpkg, debconf, …).
func (r *rootfs) closure(roots, skip []string) ([]string, error) {
	pkgs := r.packages()
	providers := map[string]string{}
	for _, p := range pkgs {
		for _, v := range p.provides {
			if _, ok := providers[v]; !ok {
				providers[v] = p.name
			}
		}
	}
	resolve := func(name string) (string, bool) {
		if _, ok := pkgs[name]; ok {
			return name, true
		}
		p, ok := providers[name]
		return p, ok
	}
	seen := map[string]bool{}
	for _, s := range skip {
		seen[s] = true
	}
	var out []string
	var walk func(string) error
	walk = func(name string) error {
		if seen[name] {
			return nil
		}
		seen[name] = true
		p, ok := pkgs[name]
		if !ok {
			return fmt.Errorf("package %s is not installed in the root filesystem", name)
		}
		out = append(out, name)
		for _, alts := range p.depends {
			found := false
			for _, a := range alts {
				if n, ok := resolve(a); ok {
					found = true
					if err := walk(n); err != nil {
						return err
					}
					break
				}
			}
			if !found {
				return fmt.Errorf("%s: no installed package satisfies %s", name, strings.Join(alts, " | "))
			}
		}
		return nil
	}
	for _, root := range roots {
		if err := walk(root); err != nil {
			return nil, err
		}
	}
	sort.Strings(out)
	return out, nil
}

// packageFiles returns the canonical paths of the files the packages ship,
// without documentation.
func (r *rootfs) packageFiles(pkgs []string) ([]string, error) {
	var out []string
	for _, p := range pkgs {
		list, ok := r.small["var/lib/dpkg/info/"+p+".list"]
		if !ok {
			list, ok = r.small["var/lib/dpkg/info/"+p+":amd64.list"]
		}
		if !ok {
			return nil, fmt.Errorf("no file list for package %s", p)
		}
		for _, line := range strings.Split(string(list), "\n") {
			name := r.canon(line)
			if name == "." || strings.HasPrefix(name, "usr/share/doc") || strings.HasPrefix(name, "usr/share/man") ||
				strings.HasPrefix(name, "usr/share/info") || strings.HasPrefix(name, "usr/share/locale") ||
				strings.HasPrefix(name, "usr/share/lintian") {
				continue
			}
			out = append(out, name)
		}
	}
	return out, nil
}

// subset writes the entries named (and their parent directories, and the
// targets of links among them, recursively) to tw, in the rootfs's order.
func (r *rootfs) subset(tw *tar.Writer, names []string) error {
	want := map[string]bool{}
	var addName func(string, int)
	addName = func(name string, depth int) {
		name = r.canon(name)
		h, ok := r.headers[name]
		if !ok || want[name] || depth > 40 {
			return
		}
		want[name] = true
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			addName(d, depth+1)
		}
		if h.Typeflag == tar.TypeLink {
			addName(h.Linkname, depth+1)
		}
		if h.Typeflag == tar.TypeSymlink {
			target := h.Linkname
			if !path.IsAbs(target) {
				target = path.Join(path.Dir("/"+name), target)
			}
			addName(target, depth+1)
		}
	}
	for _, n := range names {
		addName(n, 0)
	}
	f, err := os.Open(r.file)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(bufio.NewReaderSize(f, 1<<20))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		name := cleanName(h.Name)
		if !want[name] {
			continue
		}
		hdr := *h
		hdr.Name = name
		if h.Typeflag == tar.TypeDir {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(&hdr); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := io.Copy(tw, tr); err != nil {
				return err
			}
		}
	}
	return nil
}

// wholeTar copies the rootfs tarball as it is.
func (r *rootfs) wholeTar(w io.Writer) error {
	f, err := os.Open(r.file)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// content returns a file read in the first pass.
func (r *rootfs) content(name string) ([]byte, error) {
	b, ok := r.small[name]
	if !ok {
		return nil, fmt.Errorf("%s is not in the root filesystem", name)
	}
	return bytes.Clone(b), nil
}
