package main

import (
	"github.com/spf13/cobra"

	"github.com/tmbox/tmbox/installer"
)

func newConfigureCmd(g *globalOptions) *cobra.Command {
	c := &installer.Configure{}
	var pf platformFlags
	var yes bool
	var output string
	cmd := &cobra.Command{
		Use:   "configure",
		Short: "Change the platform settings of the installed release in place",
		Long: `Change the installed release's platform settings (domain, TLS, registry
credentials, high availability, ConfigMap keys, workload overrides, gateway)
without changing its version. Settings given here replace the installed ones;
the others are kept (--reset-settings drops them). Only the objects a setting
shapes are written; --dry-run shows which. See docs/configuration.md.`,
		Example: `  tmbox configure --domain apps.example.com --yes
  tmbox configure --config platform.yaml --mirror /srv/tmbox --dry-run`,
		Args: noArgs,
		RunE: withResult(&output, func(cmd *cobra.Command, _ []string) error {
			c.CatalogFile, c.Kubeconfig, c.Context = g.catalogFile, g.kubeconfig, g.context
			c.Platform, c.ResetPlatform = pf.settings(cmd.Flags(), g.platform), pf.resetPlatform
			c.Addons = g.addons
			c.Images = g.images
			c.Logger = g.logger(cmd.ErrOrStderr())
			c.Reporter = reporter(cmd, output)
			if err := c.Validate(); err != nil {
				return &usageError{err}
			}
			if c.DryRun {
				_, err := c.Plan(cmd.Context())
				return err
			}
			if err := confirmTarget(cmd, g, yes, true, func(cluster string) string { return "Change the settings of the installed release on " + cluster + "?" }); err != nil {
				return err
			}
			res, err := c.Run(cmd.Context())
			if err == nil && res != nil && output == "text" {
				printIngress(cmd.OutOrStdout(), res.URLPattern, res.Ingress)
			}
			return err
		}),
	}
	f := cmd.Flags()
	f.StringVar(&c.Mirror, "mirror", "", "read manifests from this directory instead of downloading them")
	f.StringVar(&c.Bundle, "bundle", "", "read manifests from this bundle file (as the install did)")
	f.StringVar(&c.BundleKey, "bundle-key", "", "ed25519 public key (PEM) the bundle's signature must verify with")
	f.StringVar(&c.StateDir, "state-dir", "", "tmbox's files on this host, a bundle's work directory among them (default ~/.local/state/tmbox)")
	f.StringVar(&c.Registry, "registry", "", "the private registry the install used (HOST[:PORT][/PREFIX])")
	f.StringVar(&c.IstioOverlay, "istio-overlay", "", "IstioOperator file merged over tmbox's Istio profile (compiled-in Istio)")
	f.StringVar(&c.TriggerMeshRegistry, "triggermesh-registry", "", "registry of rebuilt TriggerMesh images")
	f.DurationVar(&c.PhaseTimeout, "timeout", 0, "time budget for each phase to become ready (default 10m)")
	f.BoolVar(&c.DryRun, "dry-run", false, "show what would be written, change nothing")
	f.BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	addPlatformFlags(f, &pf)
	addResetFlag(f, &pf)
	addImageMapFlag(f, g)
	f.DurationVar(&c.WaitForLock, "wait-for-lock", 0, "wait up to this long for another tmbox changing the cluster to finish (default: refuse at once)")
	outputFlag(cmd, &output, streamFormats()...)
	return cmd
}
