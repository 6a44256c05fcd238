package tui

import (
	tea "github.com/charmbracelet/bubbletea"
)

// startInstalled asks the Backend, in the background, what the cluster
// the initial answers choose runs.
func (m *Model) startInstalled() tea.Cmd {
	if m.opts.Backend == nil {
		return nil
	}
	ctx, seq := m.instTask.start(m.ctx)
	b, a := m.opts.Backend, m.a
	return func() tea.Msg {
		inst, err := b.Installed(ctx, a)
		return installedMsg{seq, inst, err}
	}
}

// applyInstalled acts on what Backend.Installed found, once it and the
// releases are known, and only while the welcome screen shows: an install
// whose release is older than the one the wizard would install becomes an
// upgrade of that cluster to it (the latest, or the initial answer's),
// with the cluster and its installed components preselected.
func (m *Model) applyInstalled() {
	if m.instApplied || !m.instDone || !m.relLoaded || m.screen != screenWelcome {
		return
	}
	m.instApplied = true
	inst := m.installed
	if inst == nil || m.mode() != ModeInstall || len(m.releases) == 0 {
		return
	}
	to := m.releases[len(m.releases)-1].Name
	if m.opts.Initial.Release != "" {
		to = m.opts.Initial.Release
	}
	from, target := m.releaseIndex(inst.Release), m.releaseIndex(to)
	if from < 0 || target <= from {
		return // the same release (the install converges it), or not one the wizard can upgrade from
	}
	m.upgradeTo = to
	m.a.Mode = ModeUpgrade
	m.a.Target, m.a.Context, m.a.ClusterName = inst.Target, inst.Context, inst.ClusterName
	if inst.Target == TargetKind && inst.ClusterName != "" {
		m.clusterName.SetValue(inst.ClusterName)
	}
	if len(m.opts.Initial.Components) == 0 && len(inst.Components) > 0 {
		m.initialComps = inst.componentNames()
	}
	m.relCursor = target
	m.phases = m.opts.Backend.Phases(m.a)
	m.setPlaceholders()
	if m.ctxLoaded {
		m.setContexts(contextsMsg{m.contexts, m.currentCtx, m.ctxErr})
	}
}

// componentNames are the installed components' names.
func (inst *Installation) componentNames() []string {
	var out []string
	for _, c := range inst.Components {
		out = append(out, c.Name)
	}
	return out
}
