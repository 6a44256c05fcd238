package addons

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"helm.sh/helm/v3/pkg/chartutil"
)

// Archive returns the add-on's chart archive as an air-gap bundle
// carries it: for a .tgz or a pulled oci:// chart, the bytes Load read
// (their sha256 is ChartDigest); for a chart directory, the archive
// Helm's chartutil.Save packages (what `helm package` writes), its tar
// entries' times set to zero so the same chart always gives the same
// bytes (Helm stamps them with the time of packaging).
func Archive(l *Loaded) ([]byte, error) {
	if len(l.archive) > 0 {
		return bytes.Clone(l.archive), nil
	}
	ch, err := freshChart(l.Chart)
	if err != nil {
		return nil, fmt.Errorf("add-on %s: %w", quote(l.Addon.Name), err)
	}
	dir, err := os.MkdirTemp("", "tmbox-chart-*")
	if err != nil {
		return nil, fmt.Errorf("add-on %s: package chart %s: %w", quote(l.Addon.Name), ch.Name(), err)
	}
	defer os.RemoveAll(dir)
	path, err := chartutil.Save(ch, dir)
	if err != nil {
		return nil, fmt.Errorf("add-on %s: package chart %s: %w", quote(l.Addon.Name), ch.Name(), err)
	}
	data, err := os.ReadFile(filepath.Clean(path))
	if err != nil {
		return nil, fmt.Errorf("add-on %s: package chart %s: %w", quote(l.Addon.Name), ch.Name(), err)
	}
	out, err := reproducible(data)
	if err != nil {
		return nil, fmt.Errorf("add-on %s: package chart %s: %w", quote(l.Addon.Name), ch.Name(), err)
	}
	if int64(len(out)) > MaxChartArchiveSize {
		return nil, fmt.Errorf("add-on %s: the packaged chart %s has %d bytes, more than the limit of %d", quote(l.Addon.Name), ch.Name(), len(out), MaxChartArchiveSize)
	}
	return out, nil
}

// reproducible rewrites a gzipped tar with every entry's times at the
// Unix epoch and no gzip time, keeping names, modes, contents, order and
// the gzip header's comment and extra field.
func reproducible(data []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Comment, zw.Extra = zr.Comment, zr.Extra
	tr, tw := tar.NewReader(zr), tar.NewWriter(zw)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		norm := &tar.Header{Typeflag: hdr.Typeflag, Name: hdr.Name, Linkname: hdr.Linkname, Mode: hdr.Mode, Size: hdr.Size, ModTime: time.Unix(0, 0)}
		if err := tw.WriteHeader(norm); err != nil {
			return nil, err
		}
		if _, err := io.Copy(tw, io.LimitReader(tr, MaxChartArchiveSize)); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
