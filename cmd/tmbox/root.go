package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer/addons"
	"github.com/tmbox/tmbox/installer/provider"
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
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if err := applySettings(cmd, g); err != nil {
			return err
		}
		warnDeprecatedOutput(cmd)
		return nil
	}
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
	root.AddCommand(newCatalogCmd(g))
	root.AddCommand(newImagesCmd(g))
	finishTree(root, errOut)
	return root
}

// finishTree sets what every command of the tree shares: "did you mean"
// suggestions for a mistyped subcommand (a command with subcommands runs
// to print its help, so that its noArgs can refuse an unknown one), and
// flag warnings (deprecated spellings) on errOut, never on stdout, where
// cobra would print them.
func finishTree(cmd *cobra.Command, errOut io.Writer) {
	cmd.SuggestionsMinimumDistance = suggestionDistance
	if cmd.HasSubCommands() && cmd.Run == nil && cmd.RunE == nil {
		cmd.Args = noArgs
		cmd.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
	cmd.Flags().SetOutput(errOut)
	for _, c := range cmd.Commands() {
		finishTree(c, errOut)
	}
}

// suggestionDistance is the Levenshtein distance within which a mistyped
// subcommand gets a "did you mean" (cobra's default).
const suggestionDistance = 2

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
	// images are the image overrides: the config file's images: with the
	// --image-map file's over them (loadImageOverrides); imageMapFile is
	// --image-map.
	images       map[string]string
	imageMapFile string
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

// noArgs refuses arguments as a usage error; on a command with
// subcommands the argument is an unknown subcommand, and the error
// suggests the closest ones, as cobra does:
//
//	unknown command "instal" for "tmbox"
//
//	Did you mean this?
//		install
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if cmd.HasSubCommands() {
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
		}
	}
	return &usageError{errors.New(msg)}
}

// targetName names the cluster of --kubeconfig/--context for a
// confirmation: "context NAME (https://SERVER)". It reads the kubeconfig
// only; an error is the kubeconfig's problem, in plain words.
func (g *globalOptions) targetName() (string, error) {
	name, server, err := (&provider.Existing{Kubeconfig: g.kubeconfig, Context: g.context}).Endpoint()
	if err != nil {
		return "", err
	}
	if name == "" {
		return "the in-cluster API server (" + server + ")", nil
	}
	return fmt.Sprintf("context %s (%s)", name, server), nil
}
