package main

import (
	"bufio"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"github.com/tmbox/tmbox/bundle"
	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer"
	"github.com/tmbox/tmbox/installer/addons"
)

func newBundleCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bundle",
		Short: "Create, inspect and verify air-gap bundles",
		Long: `A bundle is one file holding the catalog entry of a release (or of several),
every manifest (verified against its pin), every image of the releases and their
kind node images, with a manifest of every file's and image's sha256 and an
optional ed25519 signature. Build it on a connected machine; on the isolated
host, tmbox install --bundle FILE verifies it and installs from it, and
tmbox upgrade --bundle FILE walks through the releases it holds. See
docs/airgap.md.`,
		Args: noArgs,
	}
	cmd.AddCommand(newBundleCreateCmd(g), newBundleInspectCmd(), newBundleVerifyCmd(), newBundleKeygenCmd())
	return cmd
}

func newBundleCreateCmd(g *globalOptions) *cobra.Command {
	var mirror, signKey, out, cacheDir, from, to, output string
	var releases, platforms []string
	cmd := &cobra.Command{
		Use:   "create --file FILE",
		Short: "Build a bundle of one release or several (connected side)",
		Long: `Build a bundle of one release or several (connected side).

--release names the releases (default: the latest); --from R1 --to R2 names
every release an upgrade walk from R1 to R2 needs (R1, each hop's target).
A bundle of several releases holds each one's catalog entry, assets and
images, files and layers they share stored once, with one manifest and one
signature; tmbox upgrade --bundle FILE walks through them.

--config FILE packs the add-ons of that InstallConfig (addons:) too: each
chart archive (a chart directory packaged with Helm; an oci:// chart must be
pinned by its digest) and every image its templates reference with the
values given there. Install with the same --config: a declared add-on the
bundle carries is installed from it. See docs/addons.md.`,
		Args: noArgs,
		Example: `  tmbox bundle create --release 1.23 --file tmbox-1.23.bundle
  tmbox bundle create --release 1.23 --mirror /srv/tmbox --sign-key tmbox.key --file tmbox-1.23.bundle
  tmbox bundle create --from 1.21 --to 1.23 --sign-key tmbox.key --file tmbox-1.21-1.23.bundle
  tmbox bundle create --release 1.22,1.23 --file tmbox-1.22-1.23.bundle -o json
  tmbox bundle create --release 1.23 --config appliance.yaml --file tmbox-1.23-addons.bundle`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return &usageError{errors.New("--file FILE is required")}
			}
			for _, p := range platforms {
				if err := bundle.ValidPlatform(p); err != nil {
					return &usageError{fmt.Errorf("--platform: %w", err)}
				}
			}
			if mirror != "" {
				if fi, err := os.Stat(mirror); err != nil || !fi.IsDir() {
					return &usageError{fmt.Errorf("--mirror %s is not a directory", mirror)}
				}
			}
			cat, err := g.catalog()
			if err != nil {
				return err
			}
			names, err := bundleReleaseFlags(cmd, cat, releases, from, to)
			if err != nil {
				return err
			}
			opts := bundle.CreateOptions{Catalog: cat, Releases: names, Platforms: platforms, Logger: g.logger(cmd.ErrOrStderr())}
			// Pulls (and the image check before them) use the Docker
			// keychain; --config's images: and --image-map's overrides are
			// pulled in place of the images they replace.
			opts.RemoteOptions = []remote.Option{remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithUserAgent("tmbox")}
			opts.ImageOverrides = g.images
			if mirror != "" {
				opts.Source = catalog.Mirror{Dir: mirror}
			} else {
				if opts.Source, err = upstreamSource(cacheDir, ""); err != nil {
					return err
				}
			}
			if signKey != "" {
				if opts.SignKey, err = bundle.ReadPrivateKeyFile(signKey); err != nil {
					return &usageError{fmt.Errorf("--sign-key: %w", err)}
				}
			}
			if len(g.addons) > 0 {
				// --config's add-ons, before anything is written: charts
				// loaded (a directory packaged), values checked, images
				// listed; an oci:// chart must be pinned by its digest.
				if opts.Addons, err = installer.BundleAddons(cmd.Context(), g.addons); err != nil {
					for _, e := range addons.Errors(err) {
						if e.File == "" {
							e.File = g.configFile
						}
					}
					return &usageError{err}
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
			if output != formatText {
				return writeStructured(cmd.OutOrStdout(), output, map[string]any{"file": out, "releases": m.ReleaseNames(), "addons": m.AddonNames(), "files": len(m.Files), "images": len(m.Images), "signed": signKey != ""})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "bundle %s: %s%s, %d files, %d images\n", out, releasesLabel(m.ReleaseNames()), addonsLabel(m), len(m.Files), len(m.Images))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&releases, "release", nil, "releases to bundle, comma-separated or repeated (default: the latest)")
	f.StringVar(&from, "from", "", "bundle every release an upgrade from this release to --to needs")
	f.StringVar(&to, "to", "", "the newest release of an upgrade walk (with --from)")
	f.StringSliceVar(&platforms, "platform", nil, "image platforms as os/arch[/variant] (default linux/amd64)")
	f.StringVar(&mirror, "mirror", "", "read manifests from this directory instead of downloading them")
	addImageMapFlag(f, g)
	f.StringVar(&cacheDir, "cache-dir", "", "download cache for manifests (default ~/.cache/tmbox/assets)")
	f.StringVar(&signKey, "sign-key", "", "sign with this ed25519 private key (PEM, from tmbox bundle keygen)")
	f.StringVar(&out, "file", "", "bundle file to write")
	deprecatedAlias(cmd, "output-file", "file")
	outputFlag(cmd, &output, allFormats()...).movedTo("--file FILE")
	for _, name := range []string{"release", "from", "to"} {
		_ = cmd.RegisterFlagCompletionFunc(name, g.completeReleases)
	}
	return cmd
}

// bundleReleaseFlags turns bundle create's --release or --from/--to into
// the releases to bundle, refusing as usage errors, before anything is
// downloaded: both forms at once, --from or --to alone, an empty list or
// element, a release the catalog does not hold, and a walk the planner
// refuses.
func bundleReleaseFlags(cmd *cobra.Command, cat *catalog.Catalog, releases []string, from, to string) ([]string, error) {
	walk := cmd.Flags().Changed("from") || cmd.Flags().Changed("to")
	switch {
	case walk && cmd.Flags().Changed("release"):
		return nil, &usageError{fmt.Errorf("--release and --from/--to name the releases two ways: give one (%s)", settingSources("release", "from", "to"))}
	case walk && (from == "" || to == ""):
		return nil, &usageError{fmt.Errorf("--from and --to go together: --from R1 --to R2 bundles every release of the upgrade walk from R1 to R2 (%s)", settingSources("from", "to"))}
	case walk:
		for _, r := range []string{from, to} {
			if _, err := cat.Release(r); err != nil {
				return nil, &usageError{err}
			}
		}
		plan, err := cat.Plan(from, to, nil, catalog.PlanOptions{})
		if err != nil {
			return nil, &usageError{fmt.Errorf("--from %s --to %s: %w", from, to, err)}
		}
		names := []string{from}
		for _, h := range plan.Hops {
			names = append(names, h.To)
		}
		return names, nil
	case cmd.Flags().Changed("release"):
		if len(releases) == 0 {
			return nil, &usageError{errors.New("--release: an empty list: name at least one release")}
		}
		for _, r := range releases {
			if strings.TrimSpace(r) == "" {
				return nil, &usageError{fmt.Errorf("--release %s: an empty release name", strings.Join(releases, ","))}
			}
			if _, err := cat.Release(r); err != nil {
				return nil, &usageError{err}
			}
		}
		return releases, nil
	}
	return []string{cat.Latest().Name}, nil
}

// bundleFileUsage reports a bundle path that is missing or not a regular
// file (*bundle.FileError) as a usage error; other errors are returned as
// they are.
func bundleFileUsage(err error) error {
	var fe *bundle.FileError
	if errors.As(err, &fe) {
		return &usageError{err}
	}
	return err
}

// settingSources reminds that flags are also set from the environment
// and the config file (applySettings), naming the variables.
func settingSources(flags ...string) string {
	vars := make([]string, len(flags))
	for i, f := range flags {
		vars[i] = envName(f)
	}
	return strings.Join(vars, ", ") + " and a --config file set these flags too"
}

// upstreamSource is the download source of bundle and mirror create:
// assets from their upstream URLs through the download cache (cacheDir,
// default ~/.cache/tmbox/assets), trusting the CA certificates in caFile
// besides the system's when it is set.
func upstreamSource(cacheDir, caFile string) (catalog.Upstream, error) {
	if cacheDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return catalog.Upstream{}, err
		}
		cacheDir = filepath.Join(base, "tmbox", "assets")
	}
	src := catalog.Upstream{CacheDir: cacheDir}
	if caFile != "" {
		pem, err := catalog.ReadLimited(caFile, maxCAFileSize)
		if err != nil {
			return catalog.Upstream{}, &usageError{fmt.Errorf("--ca-file: %w", err)}
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return catalog.Upstream{}, &usageError{fmt.Errorf("--ca-file %s: no PEM certificate in it", caFile)}
		}
		transport := http.DefaultTransport.(*http.Transport).Clone()
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		src.Client = &http.Client{Timeout: downloadTimeout, Transport: transport}
	}
	return src, nil
}

const (
	// maxCAFileSize bounds a --ca-file (a bundle of a few hundred
	// certificates).
	maxCAFileSize = 1 << 20
	// downloadTimeout is the time one asset download may take, as
	// catalog.Upstream's default client allows.
	downloadTimeout = 60 * time.Second
)

// addonsLabel is ", add-ons a, b" for a bundle carrying add-ons, "" for
// one without.
func addonsLabel(m *bundle.Manifest) string {
	if len(m.Addons) == 0 {
		return ""
	}
	return ", add-ons " + strings.Join(m.AddonNames(), ", ")
}

// releasesLabel is "release 1.23" or "releases 1.21, 1.22, 1.23".
func releasesLabel(names []string) string {
	if len(names) == 1 {
		return "release " + names[0]
	}
	return "releases " + strings.Join(names, ", ")
}

func newBundleInspectCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Show a bundle's releases, the hops it can serve, components, add-ons, images and sizes (reads its manifest and catalog only; use verify to check it)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, signed, err := bundle.Inspect(args[0])
			if err != nil {
				return bundleFileUsage(err)
			}
			hops := []catalog.Hop{}
			if len(m.Releases) > 0 {
				var cat *catalog.Catalog
				if m, cat, err = bundle.InspectCatalog(args[0]); err != nil {
					return bundleFileUsage(err)
				}
				hops = m.Hops(cat)
			}
			if output != formatText {
				return writeStructured(cmd.OutOrStdout(), output, struct {
					*bundle.Manifest
					// Releases shadows the manifest's: every release,
					// one for a single-release bundle too.
					Releases []bundle.ReleaseEntry `json:"releases"`
					Hops     []catalog.Hop         `json:"hops"`
					Signed   bool                  `json:"signed"`
				}{m, m.ReleaseEntries(), hops, signed})
			}
			return writeBundleInspectTable(cmd.OutOrStdout(), m, hops, signed)
		},
	}
	outputFlag(cmd, &output, allFormats()...)
	return cmd
}

// writeBundleInspectTable is bundle inspect's table: a header line, the
// releases and hops of a multi-release bundle, the components (one version
// column per release), the add-ons when it carries some, the images.
func writeBundleInspectTable(w io.Writer, m *bundle.Manifest, hops []catalog.Hop, signed bool) error {
	var total int64
	for _, f := range m.Files {
		total += f.Size
	}
	entries := m.ReleaseEntries()
	if len(entries) == 1 {
		fmt.Fprintf(w, "Release %s (%s), signed: %v, platforms: %s, %d files, %s\n\n", m.Release, m.Schema, signed, strings.Join(m.Platforms, ","), len(m.Files), humanBytes(total))
	} else {
		names := make([]string, len(hops))
		for i, h := range hops {
			names[i] = h.Name()
		}
		served := strings.Join(names, ", ")
		if served == "" {
			served = "none"
		}
		fmt.Fprintf(w, "Releases %s (%s), signed: %v, platforms: %s, %d files, %s\nHops: %s\n\n", strings.Join(m.ReleaseNames(), ", "), m.Schema, signed, strings.Join(m.Platforms, ","), len(m.Files), humanBytes(total), served)
	}
	header := []string{"COMPONENT", "VERSION"}
	if len(entries) > 1 {
		header = append([]string{"COMPONENT"}, m.ReleaseNames()...)
	}
	var rows [][]string
	for _, c := range m.Components {
		row := []string{c.Name}
		for _, e := range entries {
			v := "-"
			for _, ec := range e.Components {
				if ec.Name == c.Name {
					v = ec.Version
				}
			}
			row = append(row, v)
		}
		rows = append(rows, row)
	}
	if err := table(w, header, rows); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if len(m.Addons) > 0 {
		rows = nil
		for _, a := range m.Addons {
			imgs := strings.Join(a.Images, ", ")
			if imgs == "" {
				imgs = "-"
			}
			rows = append(rows, []string{a.Name, a.Chart, a.Version, a.SHA256, imgs})
		}
		if err := table(w, []string{"ADDON", "CHART", "VERSION", "SHA256", "IMAGES"}, rows); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	images := append([]bundle.Image(nil), m.Images...)
	sort.Slice(images, func(i, j int) bool { return images[i].Ref < images[j].Ref })
	rows = nil
	for _, img := range images {
		rows = append(rows, []string{img.Ref, img.Digest, humanBytes(img.Size)})
	}
	return table(w, []string{"IMAGE", "DIGEST", "SIZE"}, rows)
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
			f, err := bundle.OpenFile(args[0])
			if err != nil {
				return bundleFileUsage(err)
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
			fmt.Fprintf(cmd.OutOrStdout(), "bundle %s verified: %s%s, %d files, %d images, %s\n", args[0], releasesLabel(m.ReleaseNames()), addonsLabel(m), len(m.Files), len(m.Images), sig)
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "ed25519 public key (PEM) the signature must verify with")
	cmd.Flags().BoolVar(&require, "require-signature", false, "refuse an unsigned bundle")
	return cmd
}

func newBundleKeygenCmd() *cobra.Command {
	var out, output string
	var force bool
	cmd := &cobra.Command{
		Use:   "keygen --prefix PREFIX",
		Short: "Write an ed25519 signing key (PREFIX.key, mode 0600) and its public key (PREFIX.pub)",
		Long: `Write an ed25519 signing key (PREFIX.key, mode 0600) and its public key
(PREFIX.pub). Both are written or neither is; existing files are not
replaced unless --force is given.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return &usageError{errors.New("--prefix PREFIX is required")}
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
			if output != formatText {
				return writeStructured(cmd.OutOrStdout(), output, map[string]string{"privateKey": files[0].path, "publicKey": files[1].path})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "private key %s.key (keep it secret), public key %s.pub\n", out, out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "prefix", "", "file name prefix: writes PREFIX.key and PREFIX.pub")
	deprecatedAlias(cmd, "output-file", "prefix")
	outputFlag(cmd, &output, allFormats()...).movedTo("--prefix PREFIX")
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
