package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tmbox/tmbox/catalog"
)

// releaseView is what `tmbox versions` shows of a release.
type releaseView struct {
	Name          string            `json:"name"`
	Kubernetes    string            `json:"kubernetes"`
	Components    map[string]string `json:"components"`
	Images        int               `json:"images"`
	KindNodeImage string            `json:"kindNodeImage"`
	Latest        bool              `json:"latest,omitempty"`
}

func newVersionsCmd(g *globalOptions) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "versions",
		Short: "List the releases tmbox can install and what each pins",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cat, err := g.catalog()
			if err != nil {
				return err
			}
			views := make([]releaseView, 0, len(cat.Releases))
			for i := range cat.Releases {
				r := &cat.Releases[i]
				v := releaseView{
					Name: r.Name, Kubernetes: r.KubernetesRange(), Components: map[string]string{},
					Images: len(r.Images()), KindNodeImage: r.KindNodeImage, Latest: r == cat.Latest(),
				}
				for _, c := range r.ComponentList() {
					v.Components[c.Name] = c.Version
				}
				views = append(views, v)
			}
			if output != formatText {
				return writeStructured(cmd.OutOrStdout(), output, map[string]any{"releases": views})
			}
			header := append([]string{"RELEASE"}, catalog.ComponentNames()...)
			header = append(header, "KUBERNETES", "IMAGES")
			var rows [][]string
			for _, v := range views {
				row := []string{v.Name}
				if v.Latest {
					row[0] += " (latest)"
				}
				for _, n := range catalog.ComponentNames() {
					row = append(row, v.Components[n])
				}
				rows = append(rows, append(row, v.Kubernetes, fmt.Sprint(v.Images)))
			}
			return table(cmd.OutOrStdout(), header, rows)
		},
	}
	outputFlag(cmd, &output, allFormats()...)
	return cmd
}
