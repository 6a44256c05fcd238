package main

import (
	"github.com/spf13/cobra"

	"github.com/tmbox/tmbox/installer"
)

func newUninstallCmd(g *globalOptions) *cobra.Command {
	u := &installer.Uninstall{}
	var yes bool
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Remove what tmbox installed; CRDs and users' resources stay unless --purge",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u.Kubeconfig, u.Context = g.kubeconfig, g.context
			u.Reporter = &installer.PlainReporter{W: cmd.ErrOrStderr()}
			if u.DryRun {
				u.Reporter = &installer.PlainReporter{W: cmd.OutOrStdout()}
				return u.Run(cmd.Context())
			}
			q := "Uninstall Istio, Knative and TriggerMesh (keeping CRDs and custom resources)?"
			if u.Purge {
				q = "Uninstall Istio, Knative and TriggerMesh, and DELETE their CRDs with every custom resource?"
			}
			if err := confirm(cmd, yes, q); err != nil {
				return err
			}
			return u.Run(cmd.Context())
		},
	}
	cmd.Flags().BoolVar(&u.Purge, "purge", false, "also delete the CRDs, and with them every custom resource")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&u.DryRun, "dry-run", false, "list what would be deleted, delete nothing")
	cmd.Flags().DurationVar(&u.WaitForLock, "wait-for-lock", 0, "wait up to this long for another tmbox changing the cluster to finish (default: refuse at once)")
	return cmd
}
