package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/internal/version"
)

func newCatalogCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "catalog",
		Short: "Maintain release catalogs: add a Knative release, check pins against files, compare catalogs",
		Long: `A catalog pins every file and image of each release tmbox installs; tmbox
embeds one, and --catalog FILE replaces it. These commands make and check
catalog files: add-release adds a Knative release from its upstream files,
verify checks every pin against a mirror directory, diff shows what changed
between two catalogs. See docs/releases.md, "Adding a Knative release".`,
		Args: noArgs,
	}
	cmd.AddCommand(newCatalogAddReleaseCmd(g), newCatalogVerifyCmd(g), newCatalogDiffCmd(g))
	return cmd
}

func newCatalogAddReleaseCmd(g *globalOptions) *cobra.Command {
	var (
		a                                           catalog.AddRelease
		versions                                    = map[string]*string{}
		kubernetes, urls, koRegistries, rewrites    []string
		file, output                                string
		force                                       bool
		cpus                                        int
		memory, disk, istioSource, name, dir, image string
	)
	cmd := &cobra.Command{
		Use:   "add-release --name R --from DIR --knative-serving V … --file FILE",
		Short: "Add a Knative release to a catalog, pins computed from its upstream files",
		Long: `Write a catalog: the base catalog (--catalog, default the built-in one) plus
release R. Component versions the base already pins are reused (and checked
against their files when DIR has them). For every other version the files
are read from DIR in the mirror layout (DIR/<component>/<version>/…, e.g.
DIR/knative/serving/1.24.0/1-serving-crds.yaml): each file's size and sha256,
the apply order, every image (containers, init containers, *_IMAGE env values,
ConfigMap values, ko:// placeholders resolved) and the upstream URL.

What no file says comes from flags:
  --kubernetes CONSTRAINT           the new Knative components' minimum (knative/pkg's), e.g. ">= 1.34"
  --kubernetes COMPONENT=CONSTRAINT another new component's range, e.g. istio=">= 1.32, < 1.37"
                                    (default: another version of the same minor in the base)
  --url COMPONENT=TEMPLATE          where upstream publishes its files: {version}, {name}, {file}
                                    (Knative and TriggerMesh have defaults; rendered Istio needs one)
  --istio-source compiled-in        Istio rendered from the charts compiled into tmbox
  --ko-registry COMPONENT=REGISTRY  where a ko-built component's release pushed its images
  --image-rewrite COMPONENT=FROM=TO an image its release process rewrote (TriggerMesh's :latest)
The kind node image and host sizing are the newest release's unless given.
The result is validated as --catalog validates a file, then written to FILE.`,
		Example: `  tmbox catalog add-release --name 1.24 --from /srv/upstream \
    --knative-serving 1.24.0 --knative-eventing 1.24.0 --net-istio 1.24.0 \
    --istio 1.30.3 --triggermesh 1.27.0 --triggermesh-core 1.5.3 \
    --kubernetes ">= 1.34" --file catalog-1.24.yaml
  tmbox catalog verify --catalog catalog-1.24.yaml --mirror /srv/upstream --release 1.24`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a.Name, a.Dir, a.IstioSource, a.KindNodeImage = name, dir, istioSource, image
			a.Host = catalog.HostRequirements{CPUs: cpus, Memory: memory, Disk: disk}
			a.Versions = map[string]string{}
			for _, c := range catalog.ComponentNames() {
				if *versions[c] != "" {
					a.Versions[c] = *versions[c]
				}
			}
			if err := parseAddReleaseLists(&a, kubernetes, urls, koRegistries, rewrites); err != nil {
				return &usageError{err}
			}
			if file == "" {
				return &usageError{errors.New("--file FILE is required: where to write the new catalog")}
			}
			if err := checkTargets([]newFile{{path: file}}, force); err != nil {
				return &usageError{fmt.Errorf("--file: %w", err)}
			}
			a.BaseName = "embedded catalog"
			a.Base = catalog.EmbeddedCatalog()
			if g.catalogFile != "" {
				data, err := catalog.ReadLimited(g.catalogFile, catalog.MaxCatalogSize)
				if err != nil {
					return &usageError{fmt.Errorf("--catalog: %w", err)}
				}
				a.Base, a.BaseName = data, g.catalogFile
			}
			a.CompiledInIstio = version.Get().Istio
			if err := a.Validate(); err != nil {
				return &usageError{err}
			}
			res, err := a.Run(cmd.Context())
			var ie *catalog.InputError
			if errors.As(err, &ie) {
				return &usageError{err}
			}
			if err != nil {
				return err
			}
			if err := writeAll([]newFile{{path: file, mode: 0o644, data: res.YAML}}, force); err != nil {
				return err
			}
			if output != formatText {
				return writeStructured(cmd.OutOrStdout(), output, struct {
					File string `json:"file"`
					*catalog.AddReleaseResult
				}{file, res})
			}
			return printAddRelease(cmd.OutOrStdout(), cmd.ErrOrStderr(), file, dir, res)
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "the new release, named after its Knative minor (e.g. 1.24)")
	f.StringVar(&dir, "from", "", "mirror directory with the release's upstream files (DIR/<component>/<version>/…)")
	for _, c := range catalog.ComponentNames() {
		versions[c] = f.String(c, "", c+" version of the release")
	}
	f.StringVar(&istioSource, "istio-source", "", "source of a new Istio: manifests (its rendered files in --from) or compiled-in (the charts tmbox links); default manifests when --from has its files")
	f.StringArrayVar(&kubernetes, "kubernetes", nil, `Kubernetes constraint of the new Knative components (">= 1.34"), or COMPONENT=CONSTRAINT for another one (repeatable)`)
	f.StringArrayVar(&urls, "url", nil, "COMPONENT=TEMPLATE: upstream URL of each of a component's files, with {version}, {name} and {file} (repeatable)")
	f.StringArrayVar(&koRegistries, "ko-registry", nil, "COMPONENT=REGISTRY: where a component's release pushed the images of its ko:// placeholders (default: as for its other versions)")
	f.StringArrayVar(&rewrites, "image-rewrite", nil, "COMPONENT=FROM=TO: an image the component's release rewrote (e.g. a :latest to the release tag; repeatable)")
	f.StringVar(&image, "kind-node-image", "", "kind node image of the release, by digest (default: the newest release's)")
	f.IntVar(&cpus, "cpus", 0, "CPUs a kind host needs (default: the newest release's)")
	f.StringVar(&memory, "memory", "", "memory a kind host needs, e.g. 8Gi (default: the newest release's)")
	f.StringVar(&disk, "disk", "", "disk a kind host needs, e.g. 40Gi (default: the newest release's)")
	f.StringVar(&file, "file", "", "write the new catalog to this file")
	f.BoolVar(&force, "force", false, "replace --file if it exists")
	outputFlag(cmd, &output, allFormats()...)
	return cmd
}

// componentValue is COMPONENT=REST.
var componentValue = regexp.MustCompile(`^([a-z][a-z-]*)=(.*)$`)

// parseAddReleaseLists fills a's maps from the repeatable flags.
func parseAddReleaseLists(a *catalog.AddRelease, kubernetes, urls, koRegistries, rewrites []string) error {
	split := func(flag, v, want string) (string, string, error) {
		m := componentValue.FindStringSubmatch(v)
		if m == nil {
			return "", "", fmt.Errorf("--%s %s: want %s", flag, catalog.QuoteShort(v), want)
		}
		if !slices.Contains(catalog.ComponentNames(), m[1]) {
			return "", "", fmt.Errorf("--%s %s: unknown component %s (known: %s)", flag, catalog.QuoteShort(v), catalog.QuoteShort(m[1]), strings.Join(catalog.ComponentNames(), ", "))
		}
		return m[1], m[2], nil
	}
	var errs []error
	for _, v := range kubernetes {
		if componentValue.MatchString(v) {
			comp, c, err := split("kubernetes", v, "")
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if a.Kubernetes == nil {
				a.Kubernetes = map[string]string{}
			}
			if _, dup := a.Kubernetes[comp]; dup {
				errs = append(errs, fmt.Errorf("--kubernetes %s= is given twice", comp))
			}
			a.Kubernetes[comp] = c
			continue
		}
		if a.KnativeKubernetes != "" {
			errs = append(errs, fmt.Errorf("--kubernetes: two constraints for the Knative components (%s and %s); give one, and COMPONENT=CONSTRAINT for others", catalog.QuoteShort(a.KnativeKubernetes), catalog.QuoteShort(v)))
		}
		a.KnativeKubernetes = v
	}
	for flag, list := range map[string][]string{"url": urls, "ko-registry": koRegistries} {
		for _, v := range list {
			comp, rest, err := split(flag, v, "COMPONENT="+strings.ToUpper(strings.ReplaceAll(flag, "ko-", "")))
			if err != nil {
				errs = append(errs, err)
				continue
			}
			target := &a.URLs
			if flag == "ko-registry" {
				target = &a.KoRegistries
			}
			if *target == nil {
				*target = map[string]string{}
			}
			if _, dup := (*target)[comp]; dup {
				errs = append(errs, fmt.Errorf("--%s %s= is given twice", flag, comp))
			}
			(*target)[comp] = rest
		}
	}
	for _, v := range rewrites {
		comp, rest, err := split("image-rewrite", v, "COMPONENT=FROM=TO")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		from, to, ok := strings.Cut(rest, "=")
		if !ok || from == "" || to == "" {
			errs = append(errs, fmt.Errorf("--image-rewrite %s: want COMPONENT=FROM=TO", catalog.QuoteShort(v)))
			continue
		}
		if a.ImageRewrites == nil {
			a.ImageRewrites = map[string]map[string]string{}
		}
		if a.ImageRewrites[comp] == nil {
			a.ImageRewrites[comp] = map[string]string{}
		}
		a.ImageRewrites[comp][from] = to
	}
	slices.SortFunc(errs, func(x, y error) int { return strings.Compare(x.Error(), y.Error()) })
	return errors.Join(errs...)
}

func printAddRelease(w, errOut io.Writer, file, dir string, res *catalog.AddReleaseResult) error {
	fmt.Fprintf(w, "wrote %s: release %s added (releases %s)\n", file, res.Release, strings.Join(res.Releases, ", "))
	var rows [][]string
	for _, o := range res.Components {
		var how string
		switch {
		case o.Reused && o.Checked:
			how = "reused from the base catalog; its files in " + dir + " match"
		case o.Reused:
			how = "reused from the base catalog"
		case o.Source == catalog.SourceCompiledIn:
			how = fmt.Sprintf("new, compiled-in: %d images", o.Images)
		default:
			how = fmt.Sprintf("new: %d %s, %d %s", o.Assets, plural(o.Assets, "file", "files"), o.Images, plural(o.Images, "image", "images"))
		}
		if !o.Reused {
			from := "given"
			if o.KubernetesFrom != "given" {
				from = "as " + o.KubernetesFrom
			}
			how += fmt.Sprintf("; kubernetes %q (%s)", o.Kubernetes, from)
		}
		rows = append(rows, []string{"  " + o.Name, o.Version, how})
	}
	if err := table(w, []string{"  COMPONENT", "VERSION", "FROM"}, rows); err != nil {
		return err
	}
	for _, warn := range res.Warnings {
		fmt.Fprintln(errOut, "warning: "+warn)
	}
	fmt.Fprintf(w, "check it: tmbox catalog verify --catalog %s --mirror %s --release %s\n", file, dir, res.Release)
	return nil
}

func newCatalogVerifyCmd(g *globalOptions) *cobra.Command {
	var mirror, output string
	var releases []string
	cmd := &cobra.Command{
		Use:   "verify --mirror DIR",
		Short: "Check every pin of a catalog against the files of a mirror directory",
		Long: `Check the catalog (--catalog, default the built-in one) against a mirror
directory (DIR/<component>/<version>/…): every file's size and sha256, and
every component's image list against the images its files name. Every file
is read; every mismatch is listed, and the command exits 1 if there is one.
--release checks only those releases' components.`,
		Example: `  tmbox catalog verify --mirror /srv/upstream
  tmbox catalog verify --catalog catalog-1.24.yaml --mirror /srv/upstream --release 1.24`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if mirror == "" {
				return &usageError{errors.New("--mirror DIR is required: the directory whose files the pins are checked against")}
			}
			if fi, err := os.Stat(mirror); err != nil {
				return &usageError{fmt.Errorf("--mirror: %w", err)}
			} else if !fi.IsDir() {
				return &usageError{fmt.Errorf("--mirror %s is not a directory", catalog.ShortPath(mirror))}
			}
			cat, err := g.catalog()
			if err != nil {
				return err
			}
			for _, r := range releases {
				if _, err := cat.Release(r); err != nil {
					return &usageError{fmt.Errorf("--release: %w", err)}
				}
			}
			rep, err := catalog.VerifyMirror(cmd.Context(), cat, mirror, releases...)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			label := catalogLabel(g.catalogFile)
			if output != formatText {
				if err := writeStructured(w, output, rep); err != nil {
					return err
				}
			} else {
				for _, m := range rep.Mismatches {
					fmt.Fprintln(w, m.String())
				}
				if len(rep.Mismatches) == 0 {
					fmt.Fprintf(w, "%s: %d components, %d files in %s: every size, sha256 and image list matches\n", label, rep.Components, rep.Assets, mirror)
				}
			}
			if n := len(rep.Mismatches); n > 0 {
				return fmt.Errorf("%s: %d %s do not match %s (%d components, %d files read)", label, n, plural(n, "pin", "pins"), mirror, rep.Components, rep.Assets)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&mirror, "mirror", "", "mirror directory to check the pins against")
	f.StringSliceVar(&releases, "release", nil, "check only these releases' components, comma-separated or repeated (default: every component)")
	outputFlag(cmd, &output, allFormats()...)
	_ = cmd.RegisterFlagCompletionFunc("release", g.completeReleases)
	return cmd
}

func newCatalogDiffCmd(g *globalOptions) *cobra.Command {
	var output string
	var exitCode bool
	cmd := &cobra.Command{
		Use:   "diff [A] B",
		Short: "Show what changed between two catalogs, per release and component",
		Long: `Compare catalog file A with catalog file B (with one argument, A is the
--catalog file, default the built-in catalog): releases added or removed,
component versions a release pins, and, per component version, changed
fields (Kubernetes constraint, source, ko resolution, image rewrites), files
(size, sha256, URL, optional, order) and images. Both files are validated
as --catalog validates one. --exit-code exits 1 when they differ.`,
		Example: `  tmbox catalog diff catalog-1.24.yaml
  tmbox catalog diff old.yaml new.yaml -o json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if err := cobra.RangeArgs(1, 2)(cmd, args); err != nil {
				return &usageError{err}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			fromFile, toFile := g.catalogFile, args[0]
			if len(args) == 2 {
				fromFile, toFile = args[0], args[1]
			}
			from, err := catalog.Load(fromFile)
			if err != nil {
				return &usageError{err}
			}
			to, err := catalog.Load(toFile)
			if err != nil {
				return &usageError{err}
			}
			d := catalog.Compare(from, to)
			w := cmd.OutOrStdout()
			if output != formatText {
				if err := writeStructured(w, output, d); err != nil {
					return err
				}
			} else {
				printDiff(w, catalogLabel(fromFile), catalogLabel(toFile), d)
			}
			if exitCode && !d.Empty() {
				return errors.New("the catalogs differ")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&exitCode, "exit-code", false, "exit 1 when the catalogs differ")
	outputFlag(cmd, &output, allFormats()...)
	return cmd
}

// catalogLabel names a catalog file, or the embedded catalog for "".
func catalogLabel(file string) string {
	if file == "" {
		return "embedded catalog"
	}
	return catalog.ShortPath(file)
}

func printDiff(w io.Writer, from, to string, d *catalog.Diff) {
	if d.Empty() {
		fmt.Fprintf(w, "no differences between %s and %s\n", from, to)
		return
	}
	fmt.Fprintf(w, "from %s to %s:\n", from, to)
	versions := func(cs []catalog.VersionChange, removed bool) string {
		parts := make([]string, len(cs))
		for i, c := range cs {
			v := c.To
			if removed {
				v = c.From
			}
			parts[i] = c.Name + " " + v
		}
		return strings.Join(parts, ", ")
	}
	fields := func(fs []catalog.FieldChange, indent string) {
		for _, f := range fs {
			fmt.Fprintf(w, "%s%s: %s → %s\n", indent, f.Field, orNone(f.From), orNone(f.To))
		}
	}
	for _, r := range d.Releases {
		switch r.Change {
		case catalog.ChangeAdded:
			fmt.Fprintf(w, "release %s: added (%s)\n", r.Name, versions(r.Components, false))
		case catalog.ChangeRemoved:
			fmt.Fprintf(w, "release %s: removed (%s)\n", r.Name, versions(r.Components, true))
		default:
			fmt.Fprintf(w, "release %s: changed\n", r.Name)
			for _, c := range r.Components {
				fmt.Fprintf(w, "  %s: %s → %s\n", c.Name, orNone(c.From), orNone(c.To))
			}
			fields(r.Fields, "  ")
		}
	}
	for _, c := range d.Components {
		switch c.Change {
		case catalog.ChangeAdded, catalog.ChangeRemoved:
			fmt.Fprintf(w, "component %s %s: %s (%d %s, %d %s)\n", c.Name, c.Version, c.Change, c.AssetCount, plural(c.AssetCount, "file", "files"), c.ImageCount, plural(c.ImageCount, "image", "images"))
			continue
		}
		fmt.Fprintf(w, "component %s %s: changed\n", c.Name, c.Version)
		fields(c.Fields, "  ")
		for _, a := range c.Assets {
			if a.Change != catalog.ChangeChanged {
				fmt.Fprintf(w, "  file %s: %s\n", a.Path, a.Change)
				continue
			}
			fmt.Fprintf(w, "  file %s: changed\n", a.Path)
			fields(a.Fields, "    ")
		}
		for _, img := range c.ImagesAdded {
			fmt.Fprintf(w, "  image added: %s\n", img)
		}
		for _, img := range c.ImagesRemoved {
			fmt.Fprintf(w, "  image removed: %s\n", img)
		}
	}
}

// orNone shows a value of a diff: "(none)" for an empty one, a value with
// spaces or operators (a Kubernetes constraint) quoted.
func orNone(s string) string {
	switch {
	case s == "":
		return "(none)"
	case strings.ContainsAny(s, " <>="):
		return strconv.Quote(s)
	}
	return s
}
