package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch is the modification time of every file the assembler writes, so
// that the same inputs give the same layer digests.
var epoch = time.Unix(0, 0).UTC()

// fileLayer is a gzip-compressed layer written to a file, with its digests
// computed while writing (no second compression pass).
type fileLayer struct {
	path           string
	digest, diffID v1.Hash
	size           int64
}

var _ v1.Layer = (*fileLayer)(nil)

// Digest is the compressed layer's digest.
func (l *fileLayer) Digest() (v1.Hash, error) { return l.digest, nil }

// DiffID is the uncompressed layer's digest.
func (l *fileLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }

// Size is the compressed layer's size.
func (l *fileLayer) Size() (int64, error) { return l.size, nil }

// MediaType is the OCI gzip layer type.
func (l *fileLayer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }

// Compressed opens the layer file.
func (l *fileLayer) Compressed() (io.ReadCloser, error) { return os.Open(l.path) }

// Uncompressed opens the layer file through gunzip.
func (l *fileLayer) Uncompressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{zr, f}, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

// Write writes p through, counting.
func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func hashOf(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", h.Sum(nil))}
}

// writeLayer writes the uncompressed layer content that fill produces as a
// gzip layer (at level) to file and returns it.
func writeLayer(file string, level int, fill func(w io.Writer) error) (*fileLayer, error) {
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	compressed := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(f, compressed)}
	zw, err := gzip.NewWriterLevel(cw, level)
	if err != nil {
		return nil, err
	}
	uncompressed := sha256.New()
	if err := fill(io.MultiWriter(zw, uncompressed)); err != nil {
		return nil, fmt.Errorf("layer %s: %w", filepath.Base(file), err)
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return &fileLayer{path: file, digest: hashOf(compressed), diffID: hashOf(uncompressed), size: cw.n}, nil
}

// treeLayer writes t as a gzip layer.
func treeLayer(file string, level int, t *tree) (*fileLayer, error) {
	return writeLayer(file, level, treeWriter(t))
}

// treeWriter writes t as a tar stream.
func treeWriter(t *tree) func(w io.Writer) error {
	return func(w io.Writer) error {
		tw := tar.NewWriter(w)
		if err := t.write(tw); err != nil {
			return err
		}
		return tw.Close()
	}
}

// gzipNoCompression stores (a valid gzip stream, no CPU spent).
const gzipNoCompression = gzip.NoCompression

// tree is the content of a layer the assembler makes: paths (relative, no
// leading slash) to entries. Parent directories are added as 0755 root
// directories unless given.
type tree struct {
	entries map[string]*entry
	// overRootfs refuses paths under the merged-/usr symlinks of a Debian
	// root (bin, sbin, lib, lib64): a directory entry there would replace
	// the symlink when the layer is applied.
	overRootfs bool
}

type entry struct {
	hdr  tar.Header
	data []byte // regular file content, when src is ""
	src  string // regular file content read from this path
}

func newTree(overRootfs bool) *tree {
	return &tree{entries: map[string]*entry{}, overRootfs: overRootfs}
}

func (t *tree) add(name string, e *entry) error {
	name = strings.TrimPrefix(path.Clean("/"+name), "/")
	if t.overRootfs {
		top, _, _ := strings.Cut(name, "/")
		switch top {
		case "bin", "sbin", "lib", "lib64":
			return fmt.Errorf("%s: under a merged-/usr symlink of the root filesystem", name)
		}
	}
	e.hdr.Name = name
	if e.hdr.ModTime.IsZero() {
		e.hdr.ModTime = epoch
	}
	e.hdr.Format = tar.FormatPAX
	t.entries[name] = e
	for dir := path.Dir(name); dir != "." && dir != "/"; dir = path.Dir(dir) {
		if _, ok := t.entries[dir]; !ok {
			t.entries[dir] = &entry{hdr: tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}}
		}
	}
	return nil
}

// file adds a regular file with content data.
func (t *tree) file(name string, mode int64, data []byte) error {
	return t.add(name, &entry{hdr: tar.Header{Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(data))}, data: data})
}

// copyFile adds a regular file with the content of src.
func (t *tree) copyFile(name string, mode int64, src string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", src)
	}
	return t.add(name, &entry{hdr: tar.Header{Typeflag: tar.TypeReg, Mode: mode, Size: fi.Size()}, src: src})
}

// dir adds a directory.
func (t *tree) dir(name string, mode int64) error {
	return t.add(name, &entry{hdr: tar.Header{Typeflag: tar.TypeDir, Mode: mode}})
}

// symlink adds a symbolic link to target.
func (t *tree) symlink(name, target string) error {
	return t.add(name, &entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}})
}

// copyDir adds the directory tree at src under name, keeping modes (owner
// root); regular files, directories and symlinks only.
func (t *tree) copyDir(name, src string) error {
	return filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		dst := path.Join(name, filepath.ToSlash(rel))
		switch {
		case fi.IsDir():
			return t.dir(dst, int64(fi.Mode().Perm()))
		case fi.Mode().IsRegular():
			return t.copyFile(dst, int64(fi.Mode().Perm()), p)
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return t.symlink(dst, target)
		}
		return fmt.Errorf("%s: unsupported file type %s", p, fi.Mode().Type())
	})
}

// write writes the tree in path order.
func (t *tree) write(tw *tar.Writer) error {
	names := make([]string, 0, len(t.entries))
	for n := range t.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		e := t.entries[n]
		hdr := e.hdr
		if hdr.Typeflag == tar.TypeDir {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(&hdr); err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		if e.src == "" {
			if _, err := tw.Write(e.data); err != nil {
				return err
			}
			continue
		}
		f, err := os.Open(e.src)
		if err != nil {
			return err
		}
		_, err = io.Copy(tw, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", e.src, err)
		}
	}
	return nil
}
