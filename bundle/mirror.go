package bundle

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/tmbox/tmbox/catalog"
)

// MirrorOptions configures CreateMirror.
type MirrorOptions struct {
	// Catalog holds the releases; required.
	Catalog *catalog.Catalog
	// Releases names the releases whose assets the mirror gets; at least
	// one.
	Releases []string
	// Source delivers the assets, e.g. catalog.Upstream; each is verified
	// against its pin with catalog.Fetch. Required.
	Source catalog.Source
	// Dir is the mirror directory, laid out as catalog.Mirror reads it
	// (Dir/<Asset.Path>); it is created when absent. Required.
	Dir string
	// Logger receives progress at debug and info level (default: discard).
	Logger *slog.Logger
	// Progress, when set, is called after each asset with the assets done,
	// the total, and what was done ("kept …", "downloaded …", "replaced …").
	Progress func(done, total int, what string)
}

// MirrorResult says what CreateMirror did.
type MirrorResult struct {
	// Releases are the mirrored releases, oldest first.
	Releases []string `json:"releases"`
	// Dir is the mirror directory.
	Dir string `json:"dir"`
	// Written lists the assets' paths that were fetched and written.
	Written []string `json:"written"`
	// Kept lists the assets' paths that were already in Dir and verified.
	Kept []string `json:"kept"`
	// Replaced lists the paths (also in Written) whose earlier file did
	// not match its pin.
	Replaced []string `json:"replaced"`
}

// CreateMirror writes every asset of the named releases, optional ones
// included, into a mirror directory that catalog.Mirror (tmbox install
// --mirror) reads. Each asset is fetched from opts.Source and verified
// against its size and sha256 pin before anything is written; it is then
// written to a temporary file beside its final name and renamed into
// place, so a failure (a bad download, a full disk, a cancelled context)
// leaves neither a partial file nor a temporary one. An asset already in
// Dir that verifies is kept without fetching it; one that does not is
// replaced. Anything at an asset's path that is not a regular file (or a
// link to one) is an error naming it, as is a Dir that exists and is not a
// directory. It stops at the first error, keeping the assets written
// before it.
func CreateMirror(ctx context.Context, opts MirrorOptions) (*MirrorResult, error) {
	if opts.Catalog == nil {
		return nil, errors.New("create mirror: no catalog")
	}
	if opts.Source == nil {
		return nil, errors.New("create mirror: no asset source")
	}
	if opts.Dir == "" {
		return nil, errors.New("create mirror: no directory")
	}
	if len(opts.Releases) == 0 {
		return nil, errors.New("create mirror: no release named")
	}
	rels, err := bundleReleases(opts.Catalog, "", opts.Releases)
	if err != nil {
		return nil, fmt.Errorf("create mirror: %w", err)
	}
	assets, err := uniqueAssets(rels)
	if err != nil {
		return nil, fmt.Errorf("create mirror: %w", err)
	}
	if err := CheckMirrorDir(opts.Dir); err != nil {
		return nil, fmt.Errorf("create mirror: %w", err)
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create mirror: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	res := &MirrorResult{Releases: releaseNames(rels), Dir: opts.Dir, Written: []string{}, Kept: []string{}, Replaced: []string{}}
	local := catalog.Mirror{Dir: opts.Dir}
	for i, a := range assets {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("create mirror: %w", err)
		}
		if !catalog.SafePath(a.Path) {
			return nil, fmt.Errorf("create mirror: asset path %q is not a clean relative path", a.Path)
		}
		target := filepath.Join(opts.Dir, filepath.FromSlash(a.Path))
		what := "downloaded "
		switch _, err := os.Lstat(target); {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("create mirror: %w", err)
		default:
			_, err := catalog.Fetch(ctx, local, a)
			var dm *catalog.DigestMismatchError
			switch {
			case err == nil:
				res.Kept = append(res.Kept, a.Path)
				log.Debug("mirror asset kept", "path", a.Path)
				if opts.Progress != nil {
					opts.Progress(i+1, len(assets), "kept "+a.Path)
				}
				continue
			case errors.As(err, &dm):
				what = "replaced "
				res.Replaced = append(res.Replaced, a.Path)
			default:
				return nil, fmt.Errorf("create mirror: %w", err)
			}
		}
		data, err := catalog.Fetch(ctx, opts.Source, a)
		if err != nil {
			return nil, fmt.Errorf("create mirror: %w", err)
		}
		if err := writeFileAtomic(target, data); err != nil {
			return nil, fmt.Errorf("create mirror: %s: %w", a.Path, err)
		}
		res.Written = append(res.Written, a.Path)
		log.Debug("mirror asset written", "path", a.Path, "size", a.Size)
		if opts.Progress != nil {
			opts.Progress(i+1, len(assets), what+a.Path)
		}
	}
	log.Info("mirror created", "dir", opts.Dir, "releases", strings.Join(res.Releases, ","), "written", len(res.Written), "kept", len(res.Kept))
	return res, nil
}

// CheckMirrorDir refuses a mirror directory path that exists and is not a
// directory (or a link to one); an absent one is fine (CreateMirror
// creates it).
func CheckMirrorDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("mirror directory: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("mirror directory %s exists and is not a directory", dir)
	}
	return nil
}

// writeFileAtomic writes data to a temporary file in target's directory
// and renames it to target once it is complete and synced; on any error
// the temporary file is removed.
func writeFileAtomic(target string, data []byte) (rerr error) {
	dir := filepath.Dir(target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(target)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if rerr != nil {
			os.Remove(tmp.Name())
		}
	}()
	_, werr := tmp.Write(data)
	merr := tmp.Chmod(0o644)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, merr, serr, cerr); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), target)
}
