package main

import (
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
	var dir string
	cmd := &cobra.Command{
		Use:   "render -o DIR",
		Short: "Write a release's objects as tmbox applies them, one file per component, without a cluster",
		Long: `Fetch and verify a release's manifests and write the objects tmbox would
apply, in install order: DIR/NN-<component>.yaml (apply with kubectl apply
--server-side) and DIR/NN-<component>-create.yaml (generateName Jobs, for
kubectl create). Useful for review, GitOps, or installing by hand.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return &usageError{fmt.Errorf("-o DIR is required")}
			}
			if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
				return &usageError{fmt.Errorf("-o %s is not a directory", catalog.ShortPath(dir))}
			}
			r.CatalogFile = g.catalogFile
			r.Platform = pf.settings(cmd.Flags(), g.platform)
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
			for i, c := range comps {
				for suffix, data := range map[string][]byte{"": c.Apply, "-create": c.Create} {
					if len(data) == 0 {
						continue
					}
					p := filepath.Join(dir, fmt.Sprintf("%02d-%s%s.yaml", i+1, c.Name, suffix))
					if err := os.WriteFile(p, data, 0o644); err != nil {
						return err
					}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%02d-%s.yaml  %s %s\n", i+1, c.Name, c.Name, c.Version)
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
	f.StringVarP(&dir, "output-dir", "o", "", "directory to write the files to")
	addPlatformFlags(f, &pf)
	return cmd
}
