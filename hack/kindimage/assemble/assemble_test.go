package main

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestFullName(t *testing.T) {
	for in, want := range map[string]string{
		"docker.io/kindest/kindnetd:v1":        "docker.io/kindest/kindnetd:v1",
		"kindest/node:v1.34.4":                 "docker.io/kindest/node:v1.34.4",
		"registry.k8s.io/coredns/coredns:v1.2": "registry.k8s.io/coredns/coredns:v1.2",
		"127.0.0.1:5000/x/y:z":                 "127.0.0.1:5000/x/y:z",
	} {
		if got := fullName(in); got != want {
			t.Errorf("fullName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTreeRefusesMergedUsrPaths(t *testing.T) {
	tr := newTree(true)
	if err := tr.file("sbin/x", 0o755, nil); err == nil {
		t.Error("a layer over the rootfs accepted sbin/x")
	}
	if err := tr.file("usr/local/sbin/runc", 0o755, []byte("x")); err != nil {
		t.Error(err)
	}
	for _, d := range []string{"usr", "usr/local", "usr/local/sbin"} {
		if e := tr.entries[d]; e == nil || e.hdr.Typeflag != tar.TypeDir {
			t.Errorf("parent %s not added as a directory", d)
		}
	}
}

// rootfsTar writes a tiny merged-/usr root filesystem with a dpkg database.
func rootfsTar(t *testing.T) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, data string) {
		h.Size = int64(len(data))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	dir := func(n string) { add(&tar.Header{Name: "./" + n + "/", Typeflag: tar.TypeDir, Mode: 0o755}, "") }
	file := func(n, data string) { add(&tar.Header{Name: "./" + n, Typeflag: tar.TypeReg, Mode: 0o644}, data) }
	link := func(n, target string) {
		add(&tar.Header{Name: "./" + n, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}, "")
	}
	dir("usr")
	dir("usr/lib")
	dir("usr/lib64")
	dir("usr/sbin")
	link("lib", "usr/lib")
	link("lib64", "usr/lib64")
	file("usr/lib/libc.so.6", "libc")
	link("usr/lib64/ld.so", "/lib/ld.real")
	file("usr/lib/ld.real", "ld")
	file("usr/sbin/tool", "tool")
	file("usr/lib/big", "not wanted")
	dir("var")
	dir("var/lib")
	dir("var/lib/dpkg")
	dir("var/lib/dpkg/info")
	file("var/lib/dpkg/status", "Package: tool\nStatus: install ok installed\nDepends: libc6 (>= 2.34), awk | mawk\n\n"+
		"Package: libc6\nStatus: install ok installed\n\nPackage: mawk\nStatus: install ok installed\nProvides: awk\n\n"+
		"Package: big\nStatus: install ok installed\n")
	file("var/lib/dpkg/info/tool.list", "/.\n/usr\n/usr/sbin\n/usr/sbin/tool\n/usr/share/doc/tool/copyright\n")
	file("var/lib/dpkg/info/libc6:amd64.list", "/lib\n/lib/libc.so.6\n/lib64/ld.so\n")
	file("var/lib/dpkg/info/mawk.list", "/.\n")
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "rootfs.tar")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRootfsClosureAndSubset(t *testing.T) {
	r, err := openRootfs(rootfsTar(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.canon("lib64/ld.so"); got != "usr/lib64/ld.so" {
		t.Errorf("canon(lib64/ld.so) = %s", got)
	}
	pkgs, err := r.closure([]string{"tool"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"libc6", "mawk", "tool"}; !slices.Equal(pkgs, want) {
		t.Errorf("closure = %v, want %v", pkgs, want)
	}
	files, err := r.packageFiles(pkgs)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := r.subset(tw, append(files, "lib", "lib64")); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var names []string
	for tr := tar.NewReader(&buf); ; {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
	}
	// The symlink's target comes along; docs and unlisted files do not.
	want := []string{"usr/", "usr/lib/", "usr/lib64/", "usr/sbin/", "lib", "lib64", "usr/lib/libc.so.6",
		"usr/lib64/ld.so", "usr/lib/ld.real", "usr/sbin/tool"}
	if !slices.Equal(names, want) {
		t.Errorf("subset = %v, want %v", names, want)
	}
}
