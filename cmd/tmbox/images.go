package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tmbox/tmbox/bundle"
	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer"
	"github.com/tmbox/tmbox/installer/addons"
)

// imagesKey is the config file's section of image overrides.
const imagesKey = "images"

// addImageMapFlag registers --image-map (TMBOX_IMAGE_MAP, imageMap: in a
// config file) on a command that takes image overrides.
func addImageMapFlag(f *pflag.FlagSet, g *globalOptions) {
	f.StringVar(&g.imageMapFile, "image-map", "", "YAML file of image overrides, original reference: replacement pinned by digest (REF@sha256:…); merged over the config's images:")
}

// loadImageOverrides sets g.images: the config file's images: section,
// with the --image-map file's entries over it (a flag wins over the
// file). Errors name the file and line.
func (g *globalOptions) loadImageOverrides(fromConfig map[string]string) error {
	out := maps.Clone(fromConfig)
	if g.imageMapFile != "" {
		m, err := installer.ReadImageMap(g.imageMapFile)
		if err != nil {
			return err
		}
		if out == nil {
			out = map[string]string{}
		}
		maps.Copy(out, m)
	}
	g.images = out
	return nil
}

func newImagesCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "images",
		Short: "The images of a release: can each one be pulled?",
		Args:  noArgs,
	}
	cmd.AddCommand(newImagesCheckCmd(g))
	return cmd
}

// imageCheckRow is one image of images check: its status and who uses it.
type imageCheckRow struct {
	bundle.ImageStatus
	// UsedBy names what runs the image: components, the kind node,
	// add-ons.
	UsedBy []string `json:"usedBy"`
	// Overrides is the original reference this image replaces (an image
	// override), "" for the release's own images.
	Overrides string `json:"overrides,omitempty"`
}

// imageCheckReport is the document images check -o json writes.
type imageCheckReport struct {
	Release     string          `json:"release"`
	Images      []imageCheckRow `json:"images"`
	Checked     int             `json:"checked"`
	Unavailable int             `json:"unavailable"`
}

func newImagesCheckCmd(g *globalOptions) *cobra.Command {
	var release, output string
	var platforms []string
	var concurrency int
	cmd := &cobra.Command{
		Use:   "check [--release R]",
		Short: "Resolve every image of a release (and its add-ons) in its registry (connected side)",
		Long: `Resolve every image of a release in its registry, concurrently, with the Docker
keychain (docker login's credentials): the release's images, its kind node
image and, when --config declares add-ons, every image their charts render.
One line per image: its digest and platforms, or why it cannot be pulled
(not-found, unauthorized, unreachable, digest-mismatch for a pinned digest
the registry serves differently, missing-platform with --platform).

Image overrides (images: in --config, --image-map FILE) are checked in
place of the images they replace. tmbox bundle create runs the same check
before it downloads anything. Exit code 5 when any image cannot be pulled.`,
		Example: `  tmbox images check --release 1.23
  tmbox images check --release 1.23 --config install.yaml -o json
  tmbox images check --image-map rebuilt-triggermesh.yaml --platform linux/arm64`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, p := range platforms {
				if err := bundle.ValidPlatform(p); err != nil {
					return &usageError{fmt.Errorf("--platform: %w", err)}
				}
			}
			if concurrency < 1 {
				return &usageError{fmt.Errorf("--concurrency %d: want at least 1", concurrency)}
			}
			cat, err := g.catalog()
			if err != nil {
				return err
			}
			rel := cat.Latest()
			if release != "" {
				if rel, err = cat.Release(release); err != nil {
					return &usageError{err}
				}
			}
			if err := installer.CheckImageOverrides(g.images, rel); err != nil {
				return &usageError{err}
			}
			rows, err := imagesToCheck(cmd, g, rel)
			if err != nil {
				return err
			}
			refs := make([]string, len(rows))
			for i, r := range rows {
				refs[i] = r.Ref
			}
			statuses := bundle.CheckImages(cmd.Context(), refs, bundle.CheckOptions{Platforms: platforms, Concurrency: concurrency})
			if err := cmd.Context().Err(); err != nil {
				return err
			}
			rep := imageCheckReport{Release: rel.Name, Checked: len(rows)}
			for i := range rows {
				rows[i].ImageStatus = statuses[i]
				if !statuses[i].OK() {
					rep.Unavailable++
				}
			}
			rep.Images = rows
			if output == formatText {
				if err := printImageCheck(cmd.OutOrStdout(), rep); err != nil {
					return err
				}
			} else if err := writeStructured(cmd.OutOrStdout(), output, rep); err != nil {
				return err
			}
			if missing := bundle.Unavailable(statuses); len(missing) > 0 {
				return &bundle.ImagesMissingError{Missing: missing, Total: len(statuses)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&release, "release", "", "release whose images to check (default: the latest)")
	f.StringSliceVar(&platforms, "platform", nil, "platforms (os/arch[/variant]) every multi-platform image must hold, as bundle create --platform needs")
	f.IntVar(&concurrency, "concurrency", 8, "images resolved at once")
	addImageMapFlag(f, g)
	outputFlag(cmd, &output, allFormats()...)
	_ = cmd.RegisterFlagCompletionFunc("release", g.completeReleases)
	return cmd
}

// imagesToCheck lists, sorted and once each, every image of the release
// (an overridden one as its replacement), its kind node image and the
// images of the config's add-ons, with what uses each.
func imagesToCheck(cmd *cobra.Command, g *globalOptions, rel *catalog.Release) ([]imageCheckRow, error) {
	byRef := map[string]*imageCheckRow{}
	add := func(ref, user, original string) {
		r := byRef[ref]
		if r == nil {
			r = &imageCheckRow{ImageStatus: bundle.ImageStatus{Ref: ref}, Overrides: original}
			byRef[ref] = r
		}
		if !slices.Contains(r.UsedBy, user) {
			r.UsedBy = append(r.UsedBy, user)
		}
	}
	for _, comp := range rel.ComponentList() {
		for _, img := range comp.Images {
			if repl, ok := g.images[img]; ok {
				add(repl, comp.Name, img)
				continue
			}
			add(img, comp.Name, "")
		}
	}
	add(rel.KindNodeImage, "kind node", "")
	if len(g.addons) > 0 {
		loaded, err := addons.Load(cmd.Context(), g.addons, addons.LoadOptions{})
		if err != nil {
			return nil, err
		}
		for _, l := range loaded {
			imgs, err := addons.Images(l, "")
			if err != nil {
				return nil, err
			}
			for _, img := range imgs {
				add(img, "add-on "+l.Addon.Name, "")
			}
		}
	}
	out := make([]imageCheckRow, 0, len(byRef))
	for _, ref := range slices.Sorted(maps.Keys(byRef)) {
		out = append(out, *byRef[ref])
	}
	return out, nil
}

// printImageCheck writes the table of images check and a summary line.
func printImageCheck(w io.Writer, rep imageCheckReport) error {
	var rows [][]string
	problems := map[string]int{}
	for _, r := range rep.Images {
		digest, status := shortDigest(r.Digest), "ok"
		if !r.OK() {
			status = r.Problem + ": " + r.Error
			problems[r.Problem]++
		}
		plats := strings.Join(r.Platforms, ",")
		if plats == "" {
			plats = "-"
		}
		if digest == "" {
			digest = "-"
		}
		ref := r.Ref
		if r.Overrides != "" {
			ref += " (overrides " + r.Overrides + ")"
		}
		rows = append(rows, []string{ref, digest, plats, status})
	}
	if err := table(w, []string{"IMAGE", "DIGEST", "PLATFORMS", "STATUS"}, rows); err != nil {
		return err
	}
	summary := fmt.Sprintf("release %s: %d images, %d can be pulled", rep.Release, rep.Checked, rep.Checked-rep.Unavailable)
	if rep.Unavailable > 0 {
		var parts []string
		for _, p := range slices.Sorted(maps.Keys(problems)) {
			parts = append(parts, fmt.Sprintf("%d %s", problems[p], p))
		}
		summary += fmt.Sprintf(", %d cannot (%s)", rep.Unavailable, strings.Join(parts, ", "))
	}
	_, err := fmt.Fprintln(w, summary)
	return err
}

// shortDigest is a digest cut to 12 hex digits for a table.
func shortDigest(d string) string {
	if algo, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
		return algo + ":" + hex[:12]
	}
	return d
}
