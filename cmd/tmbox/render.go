package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer"
)

func newRenderCmd(g *globalOptions) *cobra.Command {
	r := &installer.Render{}
	var pf platformFlags
	var dir, output string
	cmd := &cobra.Command{
		Use:   "render --output-dir DIR",
		Short: "Write a release's objects as tmbox applies them, one file per component, without a cluster",
		Long: `Fetch and verify a release's manifests and write the objects tmbox would
apply, in install order: DIR/NN-<component>.yaml (apply with kubectl apply
--server-side) and DIR/NN-<component>-create.yaml (generateName Jobs, for
kubectl create). Useful for review, GitOps, or installing by hand. It lists
the files it wrote (-o json or yaml: as a document).`,
		Example: `  tmbox render --release 1.23 --mirror /srv/tmbox --output-dir rendered/
  tmbox render --components istio --output-dir istio/ -o json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case dir == "":
				return &usageError{errors.New("--output-dir DIR is required")}
			case dir == "-":
				return &usageError{errors.New("--output-dir -: render writes one file per component; name a directory")}
			}
			if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
				return &usageError{fmt.Errorf("--output-dir %s is not a directory", catalog.ShortPath(dir))}
			}
			r.CatalogFile = g.catalogFile
			r.Platform = pf.settings(cmd.Flags(), g.platform)
			r.Images = g.images
			r.Logger = g.logger(cmd.ErrOrStderr())
			if err := r.Validate(); err != nil {
				return &usageError{err}
			}
			comps, err := r.Run(cmd.Context())
			if err != nil {
				return err
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			var files []renderedFile
			for i, c := range comps {
				for _, f := range []struct {
					suffix string
					data   []byte
				}{{"", c.Apply}, {"-create", c.Create}} {
					if len(f.data) == 0 {
						continue
					}
					name := fmt.Sprintf("%02d-%s%s.yaml", i+1, c.Name, f.suffix)
					if err := os.WriteFile(filepath.Join(dir, name), f.data, 0o644); err != nil {
						return err
					}
					files = append(files, renderedFile{File: name, Component: c.Name, Version: c.Version, Create: f.suffix != ""})
				}
			}
			if output != formatText {
				return writeStructured(cmd.OutOrStdout(), output, map[string]any{"dir": dir, "files": files})
			}
			for _, f := range files {
				if !f.Create {
					fmt.Fprintf(cmd.OutOrStdout(), "%s  %s %s\n", f.File, f.Component, f.Version)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&r.Release, "release", "", "release to render (default: the latest)")
	f.StringVar(&r.Mirror, "mirror", "", "read manifests from this directory instead of downloading them")
	f.StringSliceVar(&r.Components, "components", nil, "components to render (default all: "+strings.Join(catalog.ComponentNames(), ",")+")")
	f.StringVar(&r.IstioOverlay, "istio-overlay", "", "IstioOperator file merged over tmbox's Istio profile (compiled-in Istio)")
	f.StringVar(&r.TriggerMeshRegistry, "triggermesh-registry", "", "registry of rebuilt TriggerMesh images")
	f.StringVar(&dir, "output-dir", "", "directory to write the files to")
	outputFlag(cmd, &output, allFormats()...).movedTo("--output-dir DIR")
	addPlatformFlags(f, &pf)
	addImageMapFlag(f, g)
	return cmd
}

// renderedFile is one file render wrote.
type renderedFile struct {
	File      string `json:"file"`
	Component string `json:"component"`
	Version   string `json:"version"`
	// Create marks the file of generateName objects (kubectl create).
	Create bool `json:"create,omitempty"`
}
