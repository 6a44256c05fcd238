package main

import (
	"bufio"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tmbox/tmbox/bundle"
	"github.com/tmbox/tmbox/catalog"
)

func newBundleCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bundle",
		Short: "Create, inspect and verify air-gap bundles",
		Long: `A bundle is one file holding a release's catalog entry, every manifest
(verified against its pin), every image of the release and the kind node image,
with a manifest of every file's and image's sha256 and an optional ed25519
signature. Build it on a connected machine; on the isolated host,
tmbox install --bundle FILE verifies it and installs from it. See docs/airgap.md.`,
		Args: noArgs,
	}
	cmd.AddCommand(newBundleCreateCmd(g), newBundleInspectCmd(), newBundleVerifyCmd(), newBundleKeygenCmd())
	return cmd
}

func newBundleCreateCmd(g *globalOptions) *cobra.Command {
	var release, mirror, signKey, out, cacheDir string
	var platforms []string
	cmd := &cobra.Command{
		Use:   "create -o FILE",
		Short: "Build a bundle of a release (connected side)",
		Args:  noArgs,
		Example: `  tmbox bundle create --release 1.23 -o tmbox-1.23.bundle
  tmbox bundle create --release 1.23 --mirror /srv/tmbox --sign-key tmbox.key -o tmbox-1.23.bundle`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return &usageError{errors.New("-o FILE is required")}
			}
			for _, p := range platforms {
				if err := bundle.ValidPlatform(p); err != nil {
					return &usageError{fmt.Errorf("--platform: %w", err)}
				}
			}
			cat, err := g.catalog()
			if err != nil {
				return err
			}
			if release == "" {
				release = cat.Latest().Name
			}
			if _, err := cat.Release(release); err != nil {
				return &usageError{err}
			}
			opts := bundle.CreateOptions{Catalog: cat, Release: release, Platforms: platforms, Logger: g.logger(cmd.ErrOrStderr())}
			if mirror != "" {
				opts.Source = catalog.Mirror{Dir: mirror}
			} else {
				if cacheDir == "" {
					base, err := os.UserCacheDir()
					if err != nil {
						return err
					}
					cacheDir = filepath.Join(base, "tmbox", "assets")
				}
				opts.Source = catalog.Upstream{CacheDir: cacheDir}
			}
			if signKey != "" {
				if opts.SignKey, err = bundle.ReadPrivateKeyFile(signKey); err != nil {
					return &usageError{fmt.Errorf("--sign-key: %w", err)}
				}
			}
			errOut := cmd.ErrOrStderr()
			opts.Progress = func(done, total int, what string) {
				fmt.Fprintf(errOut, "[%d/%d] %s\n", done, total, what)
			}
			// Write next to the target and rename, so a failed run leaves
			// no partial bundle under the final name.
			tmp, err := os.CreateTemp(filepath.Dir(out), ".tmbox-bundle-*")
			if err != nil {
				return err
			}
			defer os.Remove(tmp.Name())
			w := bufio.NewWriterSize(tmp, 1<<20)
			m, err := bundle.Create(cmd.Context(), w, opts)
			if err == nil {
				err = w.Flush()
			}
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			if err := os.Rename(tmp.Name(), out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "bundle %s: release %s, %d files, %d images\n", out, m.Release, len(m.Files), len(m.Images))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&release, "release", "", "release to bundle (default: the latest)")
	f.StringSliceVar(&platforms, "platform", nil, "image platforms as os/arch[/variant] (default linux/amd64)")
	f.StringVar(&mirror, "mirror", "", "read manifests from this directory instead of downloading them")
	f.StringVar(&cacheDir, "cache-dir", "", "download cache for manifests (default ~/.cache/tmbox/assets)")
	f.StringVar(&signKey, "sign-key", "", "sign with this ed25519 private key (PEM, from tmbox bundle keygen)")
	f.StringVarP(&out, "output-file", "o", "", "bundle file to write")
	_ = cmd.RegisterFlagCompletionFunc("release", g.completeReleases)
	return cmd
}

func newBundleInspectCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Show a bundle's release, components, images and sizes (reads its manifest only; use verify to check it)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "table", "json"); err != nil {
				return err
			}
			m, signed, err := bundle.Inspect(args[0])
			if err != nil {
				return err
			}
			if output == "json" {
				return writeStructured(cmd.OutOrStdout(), "json", struct {
					*bundle.Manifest
					Signed bool `json:"signed"`
				}{m, signed})
			}
			w := cmd.OutOrStdout()
			var total int64
			for _, f := range m.Files {
				total += f.Size
			}
			fmt.Fprintf(w, "Release %s (%s), signed: %v, platforms: %s, %d files, %s\n\n", m.Release, m.Schema, signed, strings.Join(m.Platforms, ","), len(m.Files), humanBytes(total))
			var rows [][]string
			for _, c := range m.Components {
				rows = append(rows, []string{c.Name, c.Version})
			}
			if err := table(w, []string{"COMPONENT", "VERSION"}, rows); err != nil {
				return err
			}
			fmt.Fprintln(w)
			images := append([]bundle.Image(nil), m.Images...)
			sort.Slice(images, func(i, j int) bool { return images[i].Ref < images[j].Ref })
			rows = nil
			for _, img := range images {
				rows = append(rows, []string{img.Ref, img.Digest, humanBytes(img.Size)})
			}
			return table(w, []string{"IMAGE", "DIGEST", "SIZE"}, rows)
		},
	}
	outputFlag(cmd, &output, "table", "json")
	return cmd
}

func newBundleVerifyCmd() *cobra.Command {
	var key string
	var require bool
	cmd := &cobra.Command{
		Use:   "verify FILE",
		Short: "Check every digest and the signature of a bundle; name the first bad entry",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := bundle.VerifyOptions{RequireSignature: require}
			if key != "" {
				pub, err := readPublicKey(key)
				if err != nil {
					return &usageError{err}
				}
				opts.PublicKey = pub
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			m, err := bundle.Verify(cmd.Context(), bufio.NewReaderSize(f, 1<<20), opts)
			if err != nil {
				return fmt.Errorf("bundle %s: %w", args[0], err)
			}
			sig := "unsigned"
			if _, signed, err := bundle.Inspect(args[0]); err == nil && signed {
				sig = "signed (signature not checked: no --key)"
				if key != "" {
					sig = "signature verified with " + key
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "bundle %s verified: release %s, %d files, %d images, %s\n", args[0], m.Release, len(m.Files), len(m.Images), sig)
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "ed25519 public key (PEM) the signature must verify with")
	cmd.Flags().BoolVar(&require, "require-signature", false, "refuse an unsigned bundle")
	return cmd
}

func newBundleKeygenCmd() *cobra.Command {
	var out string
	var force bool
	cmd := &cobra.Command{
		Use:   "keygen -o PREFIX",
		Short: "Write an ed25519 signing key (PREFIX.key, mode 0600) and its public key (PREFIX.pub)",
		Long: `Write an ed25519 signing key (PREFIX.key, mode 0600) and its public key
(PREFIX.pub). Both are written or neither is; existing files are not
replaced unless --force is given.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return &usageError{errors.New("-o PREFIX is required")}
			}
			files := []newFile{{path: out + ".key", mode: 0o600}, {path: out + ".pub", mode: 0o644}}
			if err := checkTargets(files, force); err != nil {
				return &usageError{err}
			}
			k, err := bundle.GenerateSigningKey()
			if err != nil {
				return err
			}
			priv, err := bundle.MarshalPrivateKey(k)
			if err != nil {
				return err
			}
			pub, err := bundle.MarshalPublicKey(k.Public().(ed25519.PublicKey))
			if err != nil {
				return err
			}
			files[0].data, files[1].data = priv, pub
			if err := writeAll(files, force); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "private key %s.key (keep it secret), public key %s.pub\n", out, out)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output-file", "o", "", "file name prefix")
	cmd.Flags().BoolVar(&force, "force", false, "replace existing PREFIX.key and PREFIX.pub")
	return cmd
}

// newFile is a file writeAll writes.
type newFile struct {
	path string
	mode os.FileMode
	data []byte
}

// checkTargets refuses files whose path exists (any path that is not a
// regular file, even with force), naming the first.
func checkTargets(files []newFile, force bool) error {
	for _, f := range files {
		fi, err := os.Lstat(f.path)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return err
		case !fi.Mode().IsRegular():
			return fmt.Errorf("%s exists and is not a regular file", f.path)
		case !force:
			return fmt.Errorf("%s exists: use --force to replace it", f.path)
		}
	}
	return nil
}

// writeAll writes every file or none: it checks the targets, writes each
// to a temporary file beside its target, and only when all are written
// moves them into place. Without force an existing target is never
// replaced (each is linked into place, which fails when the target exists);
// if one cannot be placed, the ones placed before it are removed again.
func writeAll(files []newFile, force bool) (rerr error) {
	if err := checkTargets(files, force); err != nil {
		return err
	}
	var temps []string
	defer func() {
		for _, t := range temps {
			os.Remove(t)
		}
	}()
	for _, f := range files {
		tmp, err := writeTemp(f)
		if err != nil {
			return err
		}
		temps = append(temps, tmp)
	}
	var placed []string
	for i, f := range files {
		err := placeFile(temps[i], f.path, force)
		if err != nil {
			for _, p := range placed {
				os.Remove(p)
			}
			if len(placed) > 0 {
				err = fmt.Errorf("%w (removed %s again)", err, strings.Join(placed, ", "))
			}
			return err
		}
		placed = append(placed, f.path)
	}
	return nil
}

// writeTemp writes f's data with f's mode to a new temporary file in the
// target's directory and returns its name.
func writeTemp(f newFile) (string, error) {
	tmp, err := os.CreateTemp(filepath.Dir(f.path), "."+filepath.Base(f.path)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", f.path, err)
	}
	_, werr := tmp.Write(f.data)
	merr := tmp.Chmod(f.mode)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, merr, serr, cerr); err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("write %s: %w", f.path, err)
	}
	return tmp.Name(), nil
}

// placeFile moves the temporary file tmp to path: a rename with force,
// otherwise a hard link, which fails if path exists (or, where hard links
// are not supported, a rename after checking path does not exist).
func placeFile(tmp, path string, force bool) error {
	if force {
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		return nil
	}
	err := os.Link(tmp, path)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrExist):
		return fmt.Errorf("%s exists: use --force to replace it", path)
	}
	if _, serr := os.Lstat(path); !errors.Is(serr, os.ErrNotExist) {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// writeNew writes a file that must not exist yet.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func readPublicKey(path string) (ed25519.PublicKey, error) {
	pub, err := bundle.ReadPublicKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("--key: %w", err)
	}
	return pub, nil
}

// exactArgs is cobra.ExactArgs reported as a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return &usageError{err}
		}
		return nil
	}
}

func humanBytes(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}
