package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer"
	"github.com/tmbox/tmbox/tui"
)

func newUpgradeCmd(g *globalOptions) *cobra.Command {
	up := &installer.Upgrade{}
	var pf platformFlags
	var yes bool
	var output string
	cmd := &cobra.Command{
		Use:   "upgrade --to RELEASE",
		Short: "Upgrade the installed release, one Knative minor per hop, rolling back a failed hop",
		Long: `Upgrade the cluster's installed release to --to. tmbox walks one Knative minor
per hop (1.21 → 1.22 → 1.23), moving Istio, Knative and TriggerMesh together;
each hop is verified, and a hop that fails is rolled back to where it started
(unless --no-rollback). The plan is shown first and every manifest of every
hop is verified before anything is written. See docs/upgrade.md.`,
		Example: `  tmbox upgrade --to 1.23 --mirror /srv/tmbox --yes
  tmbox upgrade --to 1.22 --allow-downgrade`,
		Args: noArgs,
		RunE: withResult(&output, func(cmd *cobra.Command, _ []string) error {
			up.CatalogFile, up.Kubeconfig, up.Context = g.catalogFile, g.kubeconfig, g.context
			up.Platform, up.ResetPlatform = pf.settings(cmd.Flags(), g.platform), pf.resetPlatform
			up.Addons = g.addons
			up.Images = g.images
			if !yes && !up.DryRun && output == "text" && interactive(cmd) {
				b := &wizardBackend{g: g, mode: tui.ModeUpgrade, base: up.Options, allowDowngrade: up.AllowDowngrade, noRollback: up.NoRollback}
				a := initialAnswers(g, up.Options)
				a.Target = tui.TargetExisting
				return runWizard(cmd, b, a)
			}
			if up.Release == "" {
				return &usageError{errors.New("--to is required")}
			}
			up.Logger = g.logger(cmd.ErrOrStderr())
			up.Reporter = reporter(cmd, output)
			if up.DryRun && output == "text" {
				// The plan as tmbox plan --to --details prints it.
				plan, err := up.Plan(cmd.Context(), true)
				if plan == nil {
					return err
				}
				return showPlan(cmd.OutOrStdout(), formatText, plan, err, func(w io.Writer) { printUpgradePlan(w, plan, true) })
			}
			up.Confirm = func(p *installer.UpgradePlan) error {
				if output == "text" {
					printUpgradePlan(cmd.ErrOrStderr(), p, false)
				}
				return confirmTarget(cmd, g, yes, true, func(cluster string) string { return upgradeQuestion(cluster, p) })
			}
			err := up.Run(cmd.Context())
			var pe *catalog.PlanError
			if errors.As(err, &pe) {
				return fmt.Errorf("upgrade refused, nothing was changed: %w", err)
			}
			return err
		}),
	}
	f := cmd.Flags()
	f.StringVar(&up.Release, "to", "", "target release")
	f.BoolVar(&up.AllowDowngrade, "allow-downgrade", false, "permit moving back one Knative minor")
	f.BoolVar(&up.NoRollback, "no-rollback", false, "leave a failed hop as it is, for debugging")
	f.StringVar(&up.Mirror, "mirror", "", "read manifests from this directory instead of downloading them")
	f.StringVar(&up.IstioOverlay, "istio-overlay", "", "IstioOperator file merged over tmbox's Istio profile (compiled-in Istio)")
	f.StringVar(&up.TriggerMeshRegistry, "triggermesh-registry", "", "registry of rebuilt TriggerMesh images")
	f.DurationVar(&up.PhaseTimeout, "timeout", 0, "time budget for each phase to become ready (default 10m)")
	f.BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	f.BoolVar(&up.DryRun, "dry-run", false, "show the plan (as tmbox plan --to --details), change nothing")
	f.StringVar(&up.Bundle, "bundle", "", "upgrade from this bundle file (tmbox bundle create --from … --to …); verified before anything is read from it")
	f.StringVar(&up.BundleKey, "bundle-key", "", "ed25519 public key (PEM) the bundle's signature must verify with")
	f.BoolVar(&up.RequireSignature, "require-signature", false, "refuse an unsigned bundle")
	f.StringVar(&up.StateDir, "state-dir", "", "tmbox's files on this host, a bundle's work directory among them (default ~/.local/state/tmbox)")
	f.StringVar(&up.Registry, "registry", "", "push the bundle's images to HOST[:PORT][/PREFIX] (default: the registry the install used)")
	addPlatformFlags(f, &pf)
	addResetFlag(f, &pf)
	addImageMapFlag(f, g)
	f.DurationVar(&up.WaitForLock, "wait-for-lock", 0, "wait up to this long for another tmbox changing the cluster to finish (default: refuse at once)")
	outputFlag(cmd, &output, streamFormats()...)
	_ = cmd.RegisterFlagCompletionFunc("to", g.completeReleases)
	return cmd
}

// printUpgradePlan prints a live plan: each hop's component versions and
// object counts.
func printUpgradePlan(w io.Writer, p *installer.UpgradePlan, details bool) {
	printPlan(w, p.Plan)
	for i, diffs := range p.Changes {
		if i >= len(p.Hops) {
			break
		}
		var parts []string
		for _, d := range diffs {
			parts = append(parts, fmt.Sprintf("%s +%d ~%d -%d", d.Component, d.Add, d.Change, d.Prune))
		}
		fmt.Fprintf(w, "Objects in hop %d (%s), add ~change -prune: %s\n", i+1, p.Hops[i].Name(), strings.Join(parts, ", "))
		if details {
			for _, d := range diffs {
				for _, line := range d.Details {
					fmt.Fprintf(w, "  %s: %s\n", d.Component, line)
				}
			}
		}
	}
}

// upgradeQuestion is upgrade's confirmation: which cluster, from and to
// which release, in how many hops.
func upgradeQuestion(cluster string, p *installer.UpgradePlan) string {
	return fmt.Sprintf("Upgrade %s from %s to %s in %d hop(s)?", cluster, p.From, p.To, len(p.Hops))
}
