package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer/addons"
	"github.com/tmbox/tmbox/installer/settings"
)

// newRootCmd builds the command tree. Output goes to out and errOut, never
// to the process's streams directly, so tests can capture it.
func newRootCmd(out, errOut io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "tmbox",
		Short: "Install and upgrade Istio, Knative and TriggerMesh as one pinned appliance",
		Long: `tmbox turns a Linux host (via kind) or an existing Kubernetes cluster into a
serverless appliance: pinned Istio, Knative Serving + Eventing + net-istio and the
TriggerMesh stack, upgraded in lockstep with Knative releases.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	root.SetErr(errOut)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	g := &globalOptions{}
	addGlobalFlags(root, g)
	root.PersistentFlags().StringVar(&g.configFile, "config", "", "read settings from this InstallConfig file (tmbox config init writes an example); flags and TMBOX_* env vars win over it")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error { return applySettings(cmd, g) }
	// tmbox alone is tmbox install on a terminal, install's flags included
	// (tmbox --mirror DIR opens the wizard prefilled); the help otherwise.
	install := newInstallCmd(g)
	root.Flags().AddFlagSet(install.Flags())
	root.Args = noArgs
	root.RunE = func(cmd *cobra.Command, args []string) error {
		if !interactive(cmd) {
			return cmd.Help()
		}
		return install.RunE(cmd, args)
	}
	root.AddCommand(newConfigCmd(g), newRenderCmd(g), newVersionCmd(), newVersionsCmd(g), newPlanCmd(g), newPreflightCmd(g), newClusterCmd(g), newBundleCmd(g), newMirrorCmd(g), newInstallCmd(g), newUpgradeCmd(g), newConfigureCmd(g), newStatusCmd(g), newUninstallCmd(g), newSupportBundleCmd(g))
	return root
}

// addGlobalFlags adds the flags every command shares.
func addGlobalFlags(root *cobra.Command, g *globalOptions) {
	pf := root.PersistentFlags()
	pf.StringVar(&g.catalogFile, "catalog", "", "read releases from this catalog file instead of the built-in one")
	pf.StringVar(&g.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
	pf.StringVar(&g.context, "context", "", "kubeconfig context (default: the current context)")
	pf.BoolVarP(&g.verbose, "verbose", "v", false, "debug logs on stderr")
}

// globalOptions are the flags every command shares.
type globalOptions struct {
	configFile          string
	catalogFile         string
	kubeconfig, context string
	verbose             bool
	// platform is the config file's platform: section (flags lay over it).
	platform settings.Settings
	// addons is the config file's addons: list.
	addons []addons.Addon
}

// catalog loads the built-in catalog, or --catalog's.
func (g *globalOptions) catalog() (*catalog.Catalog, error) {
	cat, err := catalog.Load(g.catalogFile)
	if err != nil {
		return nil, &usageError{err} // the user's --catalog
	}
	return cat, nil
}

// completeReleases completes release names from the catalog.
func (g *globalOptions) completeReleases(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	cat, err := g.catalog()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	return cat.ReleaseNames(), cobra.ShellCompDirectiveNoFileComp
}

// noArgs is cobra.NoArgs reported as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if err := cobra.NoArgs(cmd, args); err != nil {
		return &usageError{err}
	}
	return nil
}
