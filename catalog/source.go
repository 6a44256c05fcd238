package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/tmbox/tmbox/internal/ctxio"
)

// Source delivers the bytes of catalog assets. Implementations only find
// the bytes; Fetch verifies them. A Source must not be trusted: everything
// it returns is checked against the catalog's size and sha256 pins.
type Source interface {
	// Name describes the source for messages, e.g. "mirror /srv/tmbox".
	Name() string
	// Open returns the asset's bytes as the source has them.
	Open(ctx context.Context, a Asset) (io.ReadCloser, error)
}

// DigestMismatchError says an asset's bytes are not the pinned ones.
type DigestMismatchError struct {
	// File names the asset as the source holds it.
	File string
	// Expected is the pinned sha256; Actual is what the bytes hash to.
	Expected, Actual string
	// ExpectedSize and ActualSize are set when the sizes differ.
	ExpectedSize, ActualSize int64
}

// Error names the file and both digests.
func (e *DigestMismatchError) Error() string {
	if e.ExpectedSize != e.ActualSize {
		return fmt.Sprintf("%s: size %d, want %d (sha256 %s, want %s)", e.File, e.ActualSize, e.ExpectedSize, e.Actual, e.Expected)
	}
	return fmt.Sprintf("%s: sha256 %s, want %s", e.File, e.Actual, e.Expected)
}

// Fetch reads an asset from src and returns its bytes only if their size and
// sha256 match the pin. It never returns unverified bytes.
func Fetch(ctx context.Context, src Source, a Asset) ([]byte, error) {
	rc, err := src.Open(ctx, a)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", src.Name(), a.Path, err)
	}
	defer rc.Close()
	// Read one byte past the pinned size so an oversized file is caught
	// without reading all of it; every read checks ctx.
	data, err := io.ReadAll(io.LimitReader(ctxio.Reader{Ctx: ctx, R: rc}, a.Size+1))
	if err != nil {
		return nil, fmt.Errorf("%s: read %s: %w", src.Name(), a.Path, err)
	}
	if err := Verify(a, data); err != nil {
		var dm *DigestMismatchError
		if errors.As(err, &dm) {
			dm.File = src.Name() + ": " + a.Path
		}
		return nil, err
	}
	return data, nil
}

// Verify checks data against the asset's pinned size and sha256.
func Verify(a Asset, data []byte) error {
	sum := sha256.Sum256(data)
	actual := hex.EncodeToString(sum[:])
	if int64(len(data)) != a.Size || actual != a.SHA256 {
		return &DigestMismatchError{File: a.Path, Expected: a.SHA256, Actual: actual, ExpectedSize: a.Size, ActualSize: int64(len(data))}
	}
	return nil
}

// FetchComponent fetches and verifies every asset of a component, in
// order. It returns nothing unless all of them verify, so a caller that
// fetches before applying applies nothing from a tampered source.
func FetchComponent(ctx context.Context, src Source, c *Component) ([][]byte, error) {
	out := make([][]byte, 0, len(c.Assets))
	for _, a := range c.Assets {
		data, err := Fetch(ctx, src, a)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", c.Name, c.Version, err)
		}
		out = append(out, data)
	}
	return out, nil
}

// Mirror reads assets from a directory laid out like upstream's
// (component/version/file): an operator's copy, or ../shared/upstream.
type Mirror struct {
	Dir string
}

// Name implements Source.
func (m Mirror) Name() string { return "mirror " + m.Dir }

// Open implements Source. Only regular files (or symbolic links to
// regular files) are assets: a named pipe, device, socket or directory is
// refused with an error naming its path, without being read, so nothing in
// the mirror can make tmbox wait. Reads of the returned file fail once ctx
// is done.
func (m Mirror) Open(ctx context.Context, a Asset) (io.ReadCloser, error) {
	// Catalog validation keeps a.Path relative and free of "..".
	return openRegular(ctx, filepath.Join(m.Dir, filepath.FromSlash(a.Path)))
}

// openRegular opens the regular file at p for reading. It checks the
// file's type before opening it, opens it non-blocking so a file replaced by
// a named pipe in between cannot block the open, and checks the type of
// what it opened again.
func openRegular(ctx context.Context, p string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	lfi, err := os.Lstat(p)
	if err != nil {
		return nil, err // an *fs.PathError naming p
	}
	fi, link := lfi, lfi.Mode()&fs.ModeSymlink != 0
	if link {
		if fi, err = os.Stat(p); err != nil {
			return nil, err
		}
	}
	if err := checkRegular(p, fi, link); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_RDONLY|openNonBlock, 0)
	if err != nil {
		return nil, err
	}
	ofi, err := f.Stat()
	if err == nil {
		err = checkRegular(p, ofi, link)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &ctxFile{Reader: ctxio.Reader{Ctx: ctx, R: f}, f: f}, nil
}

// checkRegular refuses anything but a regular file, naming p and what it
// is instead.
func checkRegular(p string, fi fs.FileInfo, link bool) error {
	mode := fi.Mode()
	if mode.IsRegular() {
		return nil
	}
	var kind string
	switch {
	case mode&fs.ModeNamedPipe != 0:
		kind = "a named pipe"
	case mode&fs.ModeCharDevice != 0:
		kind = "a character device"
	case mode&fs.ModeDevice != 0:
		kind = "a block device"
	case mode&fs.ModeSocket != 0:
		kind = "a socket"
	case mode.IsDir():
		kind = "a directory"
	default:
		kind = "an irregular file (mode " + mode.Type().String() + ")"
	}
	if link {
		kind = "a symbolic link to " + kind
	}
	return fmt.Errorf("%s is %s: tmbox reads only regular files", p, kind)
}

// ctxFile is an open asset file whose reads check a context.
type ctxFile struct {
	ctxio.Reader
	f *os.File
}

func (c *ctxFile) Close() error { return c.f.Close() }

// Upstream downloads assets from their upstream URLs over HTTPS into a cache
// directory, keyed by sha256, so each file is downloaded once and only
// verified bytes are ever cached.
type Upstream struct {
	// CacheDir holds downloaded assets (e.g. ~/.cache/tmbox/assets).
	CacheDir string
	// Client is the HTTP client (default: 60 s timeout). Tests inject one.
	Client *http.Client
}

// Name implements Source.
func (u Upstream) Name() string { return "upstream" }

// Open implements Source.
func (u Upstream) Open(ctx context.Context, a Asset) (io.ReadCloser, error) {
	cached := filepath.Join(u.CacheDir, a.SHA256)
	if f, err := openRegular(ctx, cached); err == nil {
		return f, nil
	}
	data, err := u.download(ctx, a)
	if err != nil {
		return nil, err
	}
	if err := Verify(a, data); err != nil {
		var dm *DigestMismatchError
		if errors.As(err, &dm) {
			dm.File = a.URL
		}
		return nil, err
	}
	if err := os.MkdirAll(u.CacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("asset cache: %w", err)
	}
	tmp, err := os.CreateTemp(u.CacheDir, ".download-*")
	if err != nil {
		return nil, fmt.Errorf("asset cache: %w", err)
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("asset cache: %w", err)
	}
	if err := os.Rename(tmp.Name(), cached); err != nil {
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("asset cache: %w", err)
	}
	return openRegular(ctx, cached)
}

func (u Upstream) download(ctx context.Context, a Asset) ([]byte, error) {
	client := u.Client
	if client == nil {
		client = &http.Client{Timeout: 60 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", a.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("download %s: %s", a.URL, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, a.Size+1))
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", a.URL, err)
	}
	return data, nil
}
