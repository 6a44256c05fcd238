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
				data, err := os.ReadFile(signKey)
				if err != nil {
					return &usageError{fmt.Errorf("--sign-key: %w", err)}
				}
				if opts.SignKey, err = bundle.ParsePrivateKey(data); err != nil {
					return &usageError{fmt.Errorf("--sign-key %s: %w", signKey, err)}
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
	f.StringSliceVar(&platforms, "platform", nil, "image platforms (default linux/amd64)")
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
	cmd := &cobra.Command{
		Use:   "keygen -o PREFIX",
		Short: "Write an ed25519 signing key (PREFIX.key, mode 0600) and its public key (PREFIX.pub)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return &usageError{errors.New("-o PREFIX is required")}
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
			if err := writeNew(out+".key", priv, 0o600); err != nil {
				return err
			}
			if err := writeNew(out+".pub", pub, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "private key %s.key (keep it secret), public key %s.pub\n", out, out)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output-file", "o", "", "file name prefix")
	return cmd
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
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--key: %w", err)
	}
	pub, err := bundle.ParsePublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("--key %s: %w", path, err)
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
