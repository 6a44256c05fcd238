package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/go-version"
	"github.com/spf13/cobra"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer"
)

func newPlanCmd(g *globalOptions) *cobra.Command {
	var (
		from, to, kube, output, mirror  string
		bundleFile, bundleKey, stateDir string
		allowDowngrade, details         bool
	)
	cmd := &cobra.Command{
		Use:   "plan [--from RELEASE] --to RELEASE",
		Short: "Show the upgrade hops to a release: for the live cluster, or offline --from a release",
		Long: `Show how tmbox would move a cluster from one release to another: one Knative
minor per hop, every component moving together. Hops that cannot run (a
Kubernetes version outside a release's range, a downgrade without
--allow-downgrade) are refused with the reason and what would work, and the
command exits non-zero.

Without --from, tmbox reads the installed release and the Kubernetes version
from the cluster and counts, per hop and component, the objects that would be
added, changed and pruned (--details lists them); nothing is written. With
--from it plans offline from the catalog; give --kubernetes-version to check
a cluster version too.`,
		Example: `  tmbox plan --to 1.23 --mirror /srv/tmbox --details
  tmbox plan --from 1.21 --to 1.23
  tmbox plan --from 1.21 --to 1.23 --kubernetes-version 1.33.2 -o json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if to == "" {
				return &usageError{errors.New("--to is required")}
			}
			if from == "" {
				if kube != "" {
					return &usageError{errors.New("--kubernetes-version plans offline: give --from too")}
				}
				up := &installer.Upgrade{AllowDowngrade: allowDowngrade}
				up.Release, up.Mirror, up.CatalogFile, up.Kubeconfig, up.Context = to, mirror, g.catalogFile, g.kubeconfig, g.context
				up.Bundle, up.BundleKey, up.StateDir = bundleFile, bundleKey, stateDir
				up.Logger = g.logger(cmd.ErrOrStderr())
				plan, err := up.Plan(cmd.Context(), details)
				if plan == nil {
					return err
				}
				return showPlan(cmd.OutOrStdout(), output, plan, err, func(w io.Writer) { printUpgradePlan(w, plan, details) })
			}
			var kv *version.Version
			if kube != "" {
				var err error
				if kv, err = catalog.ParseKubernetesVersion(kube); err != nil {
					return &usageError{err}
				}
			}
			cat, err := g.catalog()
			if err != nil {
				return err
			}
			for flag, rel := range map[string]string{"--from": from, "--to": to} {
				if _, err := cat.Release(rel); err != nil {
					return &usageError{fmt.Errorf("%s: %w", flag, err)}
				}
			}
			plan, err := cat.Plan(from, to, kv, catalog.PlanOptions{AllowDowngrade: allowDowngrade})
			if plan == nil {
				return err
			}
			return showPlan(cmd.OutOrStdout(), output, plan, err, func(w io.Writer) { printPlan(w, plan) })
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "plan offline from this release (default: the cluster's installed release)")
	cmd.Flags().StringVar(&mirror, "mirror", "", "read manifests from this directory (live planning)")
	cmd.Flags().StringVar(&bundleFile, "bundle", "", "read releases and manifests from this bundle file (live planning; verified first)")
	cmd.Flags().StringVar(&bundleKey, "bundle-key", "", "ed25519 public key (PEM) the bundle's signature must verify with")
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "tmbox's files on this host, a bundle's work directory among them")
	cmd.Flags().BoolVar(&details, "details", false, "list every object each hop adds, changes and prunes (live planning)")
	cmd.Flags().StringVar(&to, "to", "", "target release")
	cmd.Flags().StringVar(&kube, "kubernetes-version", "", "check the hops against this cluster version (e.g. 1.34.2)")
	cmd.Flags().BoolVar(&allowDowngrade, "allow-downgrade", false, "permit a downgrade of one Knative minor")
	outputFlag(cmd, &output, allFormats()...)
	for _, f := range []string{"from", "to"} {
		_ = cmd.RegisterFlagCompletionFunc(f, g.completeReleases)
	}
	return cmd
}

// showPlan writes a plan as a table (through table) or structured, and
// turns a refusal the plan came with into the command's error.
func showPlan(w io.Writer, output string, plan any, refusal error, table func(io.Writer)) error {
	if output == formatText {
		table(w)
	} else if err := writeStructured(w, output, plan); err != nil {
		return err
	}
	if refusal != nil {
		return fmt.Errorf("plan refused: %w", refusal)
	}
	return nil
}

func printPlan(w io.Writer, p *catalog.Plan) {
	if len(p.Hops) == 0 {
		fmt.Fprintf(w, "Nothing to do: release %s is already installed.\n", p.To)
		return
	}
	for i, h := range p.Hops {
		status := "ok"
		if h.Refused != "" {
			status = "REFUSED"
		}
		title := "Hop"
		if h.Downgrade {
			title = "Downgrade hop"
		}
		fmt.Fprintf(w, "%s %d/%d: %s (Kubernetes %s) — %s\n", title, i+1, len(p.Hops), h.Name(), h.Kubernetes, status)
		var rows [][]string
		for _, c := range h.Components {
			change := "unchanged"
			switch {
			case c.From == "":
				change = "install"
			case c.Changed():
				change = "upgrade"
				if h.Downgrade {
					change = "downgrade"
				}
			}
			from := c.From
			if from == "" {
				from = "-"
			}
			rows = append(rows, []string{"  " + c.Name, from, c.To, change})
		}
		_ = table(w, []string{"  COMPONENT", "FROM", "TO", "CHANGE"}, rows)
		if h.Refused != "" {
			fmt.Fprintf(w, "  refused: %s\n", h.Refused)
		}
		if i < len(p.Hops)-1 {
			fmt.Fprintln(w)
		}
	}
}
