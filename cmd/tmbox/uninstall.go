package main

import (
	"github.com/spf13/cobra"

	"github.com/tmbox/tmbox/installer"
)

func newUninstallCmd(g *globalOptions) *cobra.Command {
	u := &installer.Uninstall{}
	var yes bool
	var output string
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Remove what tmbox installed; CRDs and users' resources stay unless --purge",
		Long: `Remove every component tmbox installed (all of them: there is no
--components here), its namespaces and its state. CRDs, and with them every
custom resource (your Knative Services, Brokers, Triggers), stay unless --purge.
The confirmation names the kubeconfig context and the API server.`,
		Args: noArgs,
		RunE: withResult(&output, func(cmd *cobra.Command, _ []string) error {
			u.Kubeconfig, u.Context = g.kubeconfig, g.context
			u.Reporter = reporter(cmd, output)
			u.Logger = g.logger(cmd.ErrOrStderr())
			if u.DryRun {
				if output == formatText {
					u.Reporter = &installer.PlainReporter{W: cmd.OutOrStdout()}
				}
				return u.Run(cmd.Context())
			}
			if err := confirmTarget(cmd, g, yes, true, func(cluster string) string { return uninstallQuestion(cluster, u.Purge) }); err != nil {
				return err
			}
			return u.Run(cmd.Context())
		}),
	}
	cmd.Flags().BoolVar(&u.Purge, "purge", false, "also delete the CRDs, and with them every custom resource")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&u.DryRun, "dry-run", false, "list what would be deleted, delete nothing")
	cmd.Flags().DurationVar(&u.WaitForLock, "wait-for-lock", 0, "wait up to this long for another tmbox changing the cluster to finish (default: refuse at once)")
	outputFlag(cmd, &output, streamFormats()...)
	return cmd
}

// uninstallQuestion is uninstall's confirmation, naming the cluster.
func uninstallQuestion(cluster string, purge bool) string {
	if purge {
		return "Uninstall Istio, Knative and TriggerMesh from " + cluster + ", and DELETE their CRDs with every custom resource?"
	}
	return "Uninstall Istio, Knative and TriggerMesh from " + cluster + ", keeping CRDs and custom resources?"
}
