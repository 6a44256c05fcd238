package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
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
	// without reading all of it.
	data, err := io.ReadAll(io.LimitReader(rc, a.Size+1))
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

// Open implements Source.
func (m Mirror) Open(_ context.Context, a Asset) (io.ReadCloser, error) {
	// Catalog validation keeps a.Path relative and free of "..".
	return os.Open(filepath.Join(m.Dir, filepath.FromSlash(a.Path)))
}

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
	if f, err := os.Open(cached); err == nil {
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
	return os.Open(cached)
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
