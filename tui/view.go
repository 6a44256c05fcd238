package tui

import (
	"fmt"
	"strings"
)

// View renders the current screen. No line is wider than the window.
func (m *Model) View() string {
	switch m.screen {
	case screenProgress:
		return m.viewProgress()
	case screenSummary:
		body, _ := m.body()
		return m.frame(m.summaryTitle(), body, -1, []string{m.help("enter/q exit")})
	}
	body, focus := m.body()
	title := fmt.Sprintf("%s %s step %d of %d: %s", m.st.title.Render(m.title()), m.g.dot,
		int(m.screen)+1, wizardSteps, m.st.step.Render(m.screen.String()))
	return m.frame(title, body, focus, []string{m.help(m.keys()...)})
}

func (m *Model) title() string {
	return "tmbox " + string(m.mode())
}

// keys is the help line of a wizard screen.
func (m *Model) keys() []string {
	back := "esc back"
	switch m.screen {
	case screenWelcome:
		return []string{"enter continue", "q quit"}
	case screenTarget:
		return []string{"up/down choose", "enter next", back, "ctrl+c quit"}
	case screenRelease:
		return []string{"up/down choose", "enter next", back, "ctrl+c quit"}
	case screenComponents:
		return []string{"up/down move", "space toggle", "enter next", back, "ctrl+c quit"}
	case screenAirGap:
		return []string{"tab/up/down field", "enter next", back, "ctrl+c quit"}
	case screenSettings:
		return []string{"tab/up/down field", "space toggle", "enter next", back, "ctrl+c quit"}
	case screenPreflight:
		if m.fixAsk {
			return []string{"y apply the fix", "n no"}
		}
		if fieldOf(m.pfErr) != "" {
			return []string{"esc back to change " + fieldLabel(fieldOf(m.pfErr)), "r re-run", "ctrl+c quit"}
		}
		keys := []string{"enter next"}
		if c, ok := m.selectedCheck(); ok {
			keys = append(keys, "up/down choose")
			if c.Status == StatusFail {
				keys = append(keys, "i ignore this check")
			}
			if c.Fix != nil {
				keys = append(keys, "f apply fix")
			}
		}
		return append(keys, "r re-run", back, "ctrl+c quit")
	case screenPlan:
		if fieldOf(m.planErr) != "" {
			return []string{"esc back to change " + fieldLabel(fieldOf(m.planErr)), "ctrl+c quit"}
		}
		return []string{"enter next", "r retry", back, "ctrl+c quit"}
	case screenConfirm:
		if m.saving {
			return []string{"enter save", "esc cancel"}
		}
		return []string{"enter " + string(m.mode()), "s save as config", back, "ctrl+c quit"}
	}
	return []string{"enter next", back, "ctrl+c quit"}
}

func (m *Model) help(keys ...string) string {
	return m.st.faint.Render(strings.Join(keys, " "+m.g.dot+" "))
}

// frame lays out a screen: title, body (clipped to the window's height,
// keeping line focus visible or else scrolled by m.scroll), errors and
// footer; every line is cut to the window's width.
func (m *Model) frame(title string, body []string, focus int, footer []string) string {
	w := m.w()
	var foot []string
	for _, e := range m.errs {
		for _, l := range wrap(e, w, 2) {
			foot = append(foot, m.st.fail.Render(l))
		}
	}
	if len(footer) > 0 {
		foot = append(foot, "")
		foot = append(foot, footer...)
	}
	if len(m.errs) > 0 {
		foot = append([]string{""}, foot...)
	}
	head := []string{title, ""}
	if m.height > 0 {
		body = m.clip(body, focus, m.height-len(head)-len(foot))
	}
	lines := append(head, body...)
	lines = append(lines, foot...)
	lines = truncate(lines, w, m.g.ellipsis)
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n")
}

// clip fits body into n lines.
func (m *Model) clip(body []string, focus, n int) []string {
	if len(body) <= n {
		return body
	}
	if n < 3 {
		return body[:max(n, 0)]
	}
	start := min(max(m.scroll, 0), len(body)-n)
	if focus >= 0 {
		start = 0
		if focus > n-2 {
			start = focus - (n - 2)
		}
		start = min(start, len(body)-n)
	}
	out := append([]string(nil), body[start:start+n]...)
	if start > 0 {
		out[0] = m.st.faint.Render(fmt.Sprintf("  %s %d more", m.g.up, start))
	}
	if rest := len(body) - (start + n); rest > 0 {
		out[n-1] = m.st.faint.Render(fmt.Sprintf("  %s %d more (up/down to scroll)", m.g.down, rest+1))
	}
	return out
}

// body renders the current screen's body and the line to keep visible (-1
// for none).
func (m *Model) body() ([]string, int) {
	switch m.screen {
	case screenWelcome:
		return m.viewWelcome(), -1
	case screenTarget:
		return m.viewTarget()
	case screenRelease:
		return m.viewRelease()
	case screenComponents:
		return m.viewComponents()
	case screenAirGap:
		return m.viewAirGap(), -1
	case screenOverlay:
		return m.viewOverlay(), -1
	case screenSettings:
		return m.viewSettings()
	case screenPreflight:
		return m.viewPreflight()
	case screenPlan:
		return m.viewPlan(), -1
	case screenConfirm:
		return m.viewConfirm(), -1
	case screenSummary:
		return m.viewSummary(), -1
	}
	return nil, -1
}

func (m *Model) para(s string) []string {
	return wrap(s, m.w(), 2)
}

func (m *Model) viewWelcome() []string {
	w, g := m.w(), m.g
	upgrade := m.mode() == ModeUpgrade
	var out []string
	if m.installed != nil {
		out = append(out, m.viewInstalled(m.installed)...)
		out = append(out, "")
	}
	switch {
	case upgrade && m.upgradeTo != "":
		out = append(out, m.para(fmt.Sprintf("This wizard upgrades it to release %s, in lockstep, one Knative minor at a time; a failed hop is rolled back. The plan step shows each hop.", m.upgradeTo))...)
	case upgrade:
		out = append(out, m.para("This wizard upgrades the Istio, Knative and TriggerMesh stack tmbox installed to a newer release, in lockstep, one Knative minor at a time; a failed hop is rolled back.")...)
	default:
		out = append(out, m.para("This wizard installs a pinned, verified serverless stack:")...)
		for _, s := range []string{
			"Istio, with its ingress gateway",
			"Knative Serving (with net-istio) and Knative Eventing",
			"TriggerMesh and triggermesh-core",
		} {
			out = append(out, wrap(g.dot+" "+s, w, 4)...)
		}
	}
	var names []string
	for _, p := range m.phases {
		names = append(names, p.Name)
	}
	phases := strings.Join(names, " "+g.arrow+" ")
	out = append(out, "")
	if upgrade {
		out = append(out, m.para("Each hop runs these phases, in order:")...)
	} else {
		out = append(out, m.para("It runs these phases, in order:")...)
	}
	out = append(out, wrap(phases, w, 4)...)
	out = append(out, "", "  "+m.st.bold.Render("How long"))
	if upgrade {
		out = append(out, wrap("A few minutes per hop: each hop applies every component's new manifests and waits until its workloads are ready.", w, 4)...)
	} else {
		out = append(out, wrap("A few minutes on a ready cluster; longer when it creates a kind cluster, which pulls the node image and every component's images.", w, 4)...)
	}
	out = append(out, "", "  "+m.st.bold.Render("What it needs"))
	if upgrade {
		out = append(out, wrap(g.dot+" the cluster tmbox installed the stack on, reachable through your kubeconfig", w, 4)...)
	} else {
		out = append(out, wrap(g.dot+" an existing cluster your kubeconfig reaches, or", w, 4)...)
		out = append(out, wrap(g.dot+" Docker or Podman on this host to create a kind cluster (4 CPUs and 8 GiB of memory for kind)", w, 4)...)
	}
	out = append(out, "")
	out = append(out, m.para("Nothing is changed before you confirm on the last step.")...)
	return out
}

// viewInstalled says what the cluster runs, as Backend.Installed found it.
func (m *Model) viewInstalled(inst *Installation) []string {
	health := "healthy"
	if !inst.Healthy {
		health = "not healthy: tmbox status says why"
	}
	out := m.para(fmt.Sprintf("Release %s is installed on %s (%s):", inst.Release, inst.Where, health))
	nameW := 0
	for _, c := range inst.Components {
		nameW = max(nameW, len(c.Name))
	}
	for _, c := range inst.Components {
		out = append(out, "    "+padRight(c.Name, nameW)+"  "+c.Version)
	}
	if m.mode() == ModeInstall && m.releaseIndex(inst.Release) == m.relCursor && m.relLoaded {
		out = append(out, m.para("Installing it again converges it: what is in place is verified and left alone, changed answers are applied.")...)
	}
	return out
}

func (m *Model) targetText() string {
	if m.a.Target == TargetKind {
		return fmt.Sprintf("kind cluster %q", m.a.ClusterName)
	}
	return fmt.Sprintf("context %q", m.a.Context)
}

func (m *Model) cursor(on bool) string {
	if on {
		return "  " + m.st.accent.Render(m.g.cursor) + " "
	}
	return "    "
}

func (m *Model) viewTarget() ([]string, int) {
	q := "Where should tmbox install?"
	kind := "create a kind cluster on this host"
	if m.mode() == ModeUpgrade {
		q, kind = "Which cluster should tmbox upgrade?", "the kind cluster tmbox created on this host"
	}
	out := m.para(q)
	out = append(out, "")
	focus := 0
	line := func(i int, text string) {
		if i == m.targetCursor {
			focus = len(out)
			text = m.st.bold.Render(text)
		}
		out = append(out, m.cursor(i == m.targetCursor)+text)
	}
	line(0, kind)
	if m.targetCursor == 0 {
		out = append(out, "      "+m.clusterName.View())
		out = append(out, wrap("lower-case letters, digits and '-', at most 49 characters", m.w(), 6)...)
	}
	for i, c := range m.contexts {
		text := "context " + c
		if c == m.currentCtx {
			text += m.st.faint.Render(" (current)")
		}
		line(i+1, text)
	}
	switch {
	case !m.ctxLoaded:
		out = append(out, "", "  "+m.st.faint.Render("reading the kubeconfig"+m.g.ellipsis))
	case m.ctxErr != nil:
		out = append(out, "")
		out = append(out, wrap("no kubeconfig contexts: "+m.ctxErr.Error(), m.w(), 2)...)
	case len(m.contexts) == 0:
		out = append(out, "", "  "+m.st.faint.Render("(the kubeconfig has no contexts)"))
	}
	return out, focus
}

func (m *Model) viewRelease() ([]string, int) {
	q := "Which release should tmbox install?"
	if m.mode() == ModeUpgrade {
		q = "Which release should tmbox upgrade to?"
	}
	out := append(m.para(q), "")
	switch {
	case m.relErr != nil:
		return append(out, wrap("cannot list the releases: "+m.relErr.Error(), m.w(), 2)...), -1
	case !m.relLoaded:
		return append(out, "  "+m.st.faint.Render("reading the catalog"+m.g.ellipsis)), -1
	case len(m.releases) == 0:
		return append(out, "  the catalog has no releases"), -1
	}
	nameW := 0
	for _, r := range m.releases {
		nameW = max(nameW, len(r.Name))
	}
	focus := 0
	for i, r := range m.releases {
		text := padRight(r.Name, nameW)
		if r.Kubernetes != "" {
			text += "   Kubernetes " + r.Kubernetes
		}
		if i == len(m.releases)-1 {
			text += m.st.faint.Render("   (latest)")
		}
		if i == m.relCursor {
			focus = len(out)
			text = m.st.bold.Render(text)
		}
		out = append(out, m.cursor(i == m.relCursor)+text)
	}
	r, _ := m.release()
	out = append(out, "", "  "+m.st.bold.Render("Release "+r.Name+" pins:"))
	compW := 0
	for _, c := range r.Components {
		compW = max(compW, len(c.Name))
	}
	for _, c := range r.Components {
		out = append(out, "    "+padRight(c.Name, compW)+"  "+c.Version)
	}
	return out, focus
}

func (m *Model) viewComponents() ([]string, int) {
	r, _ := m.release()
	out := m.para(fmt.Sprintf("Which components of release %s? Istio, Knative Serving and net-istio are always installed.", r.Name))
	out = append(out, "")
	compW := 0
	for _, c := range r.Components {
		compW = max(compW, len(c.Name))
	}
	focus, opt := -1, 0
	for _, c := range r.Components {
		box := m.g.on
		if !c.Required && !m.selected[c.Name] {
			box = m.g.off
		}
		text := box + " " + padRight(c.Name, compW) + "  " + padRight(c.Version, 8)
		cur := false
		if c.Required {
			text = m.st.faint.Render(text + "  required")
		} else {
			cur = opt == m.compCursor
			if cur {
				focus = len(out)
				text = m.st.bold.Render(text)
			}
			opt++
		}
		out = append(out, strings.TrimRight(m.cursor(cur)+text, " "))
	}
	out = append(out, "")
	out = append(out, wrap("triggermesh-core needs triggermesh.", m.w(), 2)...)
	return out, focus
}

func (m *Model) viewAirGap() []string {
	out := m.para("Air gap (optional): install from a bundle made with `tmbox bundle create`, or read the release's manifests from a mirror directory, instead of downloading them. Leave the fields empty to download from upstream.")
	out = append(out, "")
	for i := range m.airGap {
		out = append(out, m.cursor(i == m.airFocus)+m.airGap[i].View())
	}
	out = append(out, "")
	out = append(out, m.para("The bundle key is the public key the bundle must verify with. The registry (HOST[:PORT][/PREFIX]) receives the bundle's images; a bundle into an existing cluster needs one. The mirror directory holds the release's manifests as `tmbox mirror create` lays them out (component/version/file); the images still come from their registries.")...)
	return out
}

func (m *Model) viewOverlay() []string {
	out := m.para("Istio overlay (optional): an IstioOperator YAML file merged into tmbox's Istio profile. Leave empty for tmbox's profile as it is.")
	out = append(out, "")
	out = append(out, m.cursor(true)+m.overlay.View())
	return out
}

func (m *Model) viewSettings() ([]string, int) {
	intro := "Settings (optional): where functions are reachable and how the stack runs. Leave a field empty for none."
	if m.mode() == ModeUpgrade {
		intro = "Settings (optional): leave a field empty to keep the installed setting; a value given here replaces it."
	}
	out := append(m.para(intro), "")
	focus := 0
	for i := range m.setInput {
		if i == m.setFocus {
			focus = len(out)
		}
		row := m.setInput[i].View()
		if i == setTLSRedirect {
			box := m.g.off
			if m.tlsRedirect {
				box = m.g.on
			}
			row = m.st.bold.Render("TLS redirect:  ") + box + " redirect HTTP to HTTPS"
		}
		out = append(out, m.cursor(i == m.setFocus)+row)
	}
	out = append(out, "")
	out = append(out, m.para("Functions will be reachable as http(s)://{name}.{namespace}.DOMAIN.")...)
	switch {
	case m.mode() == ModeUpgrade:
		out = append(out, m.para("An empty domain keeps the installed one.")...)
	case m.defaultDomain != "" && m.a.Target == TargetKind:
		out = append(out, m.para(fmt.Sprintf("On this kind cluster an empty domain is %s: LISTEN-ADDRESS.sslip.io resolves to the cluster's listen address without any DNS setup.", m.defaultDomain))...)
	case m.defaultDomain != "":
		out = append(out, m.para(fmt.Sprintf("An empty domain is %s.", m.defaultDomain))...)
	default:
		out = append(out, m.para("Without a domain, functions are reachable only inside the cluster.")...)
	}
	out = append(out, "")
	out = append(out, m.para("The certificate and key are PEM files: the ingress gateway serves HTTPS with them. The pull secret is a Docker config JSON file (as ~/.docker/config.json) every workload pulls its images with. HA replicas run Knative's and Istio's control planes with that many replicas; empty or 0 is off.")...)
	return out, focus
}

func (m *Model) spinnerText(text string) string {
	if m.opts.Plain {
		return "  " + text + "..."
	}
	return "  " + m.spinner.View() + " " + text + m.g.ellipsis
}

// viewPreflight renders the checks, and the line of the selected one.
func (m *Model) viewPreflight() ([]string, int) {
	if m.pf.running {
		return []string{m.spinnerText("running the preflight checks")}, -1
	}
	if m.fixTask.running {
		return []string{m.spinnerText("applying the fix of " + m.fixCheck)}, -1
	}
	if m.pfErr != nil {
		if f := fieldOf(m.pfErr); f != "" {
			out := wrap(errText(m.pfErr), m.w(), 2)
			return append(out, wrap("Press esc to go back and change "+fieldLabel(f)+".", m.w(), 2)...), -1
		}
		return wrap("The preflight checks could not run: "+m.pfErr.Error()+". Press r to retry.", m.w(), 2), -1
	}
	nameW, catW := 0, 0
	for _, c := range m.pfChecks {
		nameW, catW = max(nameW, len(c.Name)), max(catW, len(c.Category))
	}
	var out []string
	indent := 2 + len(m.g.pass) + 1 + nameW + 2 + catW + 2
	if m.opts.Plain {
		indent = 2 + 4 + 1 + nameW + 2 + catW + 2
	}
	indent = min(indent, m.w()/2)
	focus := -1
	for i, c := range m.pfChecks {
		lead := "  "
		if i == m.pfCursor {
			focus = len(out)
			lead = m.st.accent.Render(m.g.cursor) + " "
		}
		head := lead + m.statusMarker(c.Status) + " " + padRight(c.Name, nameW) + "  " + m.st.faint.Render(padRight(c.Category, catW)) + "  "
		text := c.Message
		if c.Ignored {
			text += " (ignored for this run)"
		}
		msg := wrap(text, m.w(), indent)
		out = append(out, head+strings.TrimLeft(msg[0], " "))
		out = append(out, msg[1:]...)
		if c.Status != StatusPass && c.Remediation != "" {
			for _, l := range wrap("fix: "+c.Remediation, m.w(), indent) {
				out = append(out, m.st.faint.Render(l))
			}
		}
		if c.Status != StatusPass && c.Fix != nil {
			for _, l := range wrap("tmbox can "+c.Fix.Description+" (f)", m.w(), indent) {
				out = append(out, m.st.faint.Render(l))
			}
		}
	}
	pass, warn, fail, skip := countStatus(m.pfChecks, StatusPass), countStatus(m.pfChecks, StatusWarn),
		countStatus(m.pfChecks, StatusFail), countStatus(m.pfChecks, StatusSkip)
	out = append(out, "", fmt.Sprintf("  %d passed, %d %s, %d failed, %d skipped", pass, warn, plural(warn, "warning", "warnings"), fail, skip))
	if m.pfNote != "" {
		for _, l := range wrap(m.pfNote, m.w(), 2) {
			if m.pfNoteFail {
				l = m.st.fail.Render(l)
			}
			out = append(out, l)
		}
	}
	if m.fixAsk {
		c, _ := m.selectedCheck()
		out = append(out, "")
		if c.Fix != nil {
			out = append(out, wrap(fmt.Sprintf("Apply the fix of %s? tmbox will %s:", c.Name, c.Fix.Description), m.w(), 2)...)
			for _, ch := range c.Fix.Changes {
				out = append(out, wrap(m.g.dot+" "+ch, m.w(), 4)...)
			}
		}
		focus = len(out)
		out = append(out, "  "+m.st.bold.Render("apply these changes? y/n"))
		return out, focus
	}
	if fail > 0 {
		text := "Preflight failed: fix the failures above and press r to re-run the checks, or press i to ignore the selected check for this run"
		if c, ok := m.selectedCheck(); ok && c.Fix != nil {
			text += ", or f to apply its fix"
		}
		text += "; esc goes back to change the answers."
		for _, l := range wrap(text, m.w(), 2) {
			out = append(out, m.st.fail.Render(l))
		}
	} else {
		out = append(out, "  Press enter to see the plan.")
	}
	return out, focus
}

func (m *Model) viewPlan() []string {
	if m.planTask.running {
		return []string{m.spinnerText("making the plan")}
	}
	if m.planErr != nil {
		if f := fieldOf(m.planErr); f != "" {
			out := wrap(errText(m.planErr), m.w(), 2)
			return append(out, wrap("Press esc to go back and change "+fieldLabel(f)+".", m.w(), 2)...)
		}
		return wrap("Cannot make the plan: "+m.planErr.Error()+". Press r to retry.", m.w(), 2)
	}
	verb := "install"
	if m.mode() == ModeUpgrade {
		verb = "upgrade"
	}
	out := append(m.para(fmt.Sprintf("The %s will run, in order:", verb)), "")
	phaseW := 0
	for _, l := range m.planLines {
		phaseW = max(phaseW, len(l.Phase))
	}
	indent := min(4+phaseW+2, m.w()/2)
	for _, l := range m.planLines {
		d := wrap(l.Description, m.w(), indent)
		out = append(out, "    "+m.st.bold.Render(padRight(l.Phase, phaseW))+"  "+strings.TrimLeft(d[0], " "))
		out = append(out, d[1:]...)
	}
	return out
}

func (m *Model) viewConfirm() []string {
	verb := "install"
	if m.mode() == ModeUpgrade {
		verb = "upgrade"
	}
	out := append(m.para(fmt.Sprintf("Ready to %s. Check the answers; enter starts.", verb)), "")
	target := fmt.Sprintf("kubeconfig context %q", m.a.Context)
	if m.a.Target == TargetKind {
		target = fmt.Sprintf("kind cluster %q on this host", m.a.ClusterName)
	}
	var airgaps []string
	if m.a.Bundle != "" {
		b := "bundle " + m.a.Bundle
		if m.a.BundleKey != "" {
			b += ", key " + m.a.BundleKey
		}
		if m.a.Registry != "" {
			b += ", registry " + m.a.Registry
		}
		airgaps = append(airgaps, b)
	}
	if m.a.Mirror != "" {
		airgaps = append(airgaps, "mirror "+m.a.Mirror)
	}
	airgap := "no (download from upstream)"
	if len(airgaps) > 0 {
		airgap = strings.Join(airgaps, "; ")
	}
	overlay := "none"
	if m.a.IstioOverlay != "" {
		overlay = m.a.IstioOverlay
	}
	domain, tls, pull, ha := m.settingsText()
	pf := fmt.Sprintf("%d passed, %d %s", countStatus(m.pfChecks, StatusPass),
		countStatus(m.pfChecks, StatusWarn), plural(countStatus(m.pfChecks, StatusWarn), "warning", "warnings"))
	if len(m.a.IgnorePreflightErrors) > 0 {
		pf += "; ignoring " + strings.Join(m.a.IgnorePreflightErrors, ", ")
	}
	rows := [][2]string{
		{"Target", target},
		{"Release", m.a.Release},
		{"Components", strings.Join(m.a.Components, ", ")},
		{"Air gap", airgap},
		{"Istio overlay", overlay},
		{"Domain", domain},
		{"TLS", tls},
		{"Pull secret", pull},
		{"HA replicas", ha},
		{"Preflight", pf},
	}
	for _, r := range rows {
		v := wrap(r[1], m.w(), 19)
		out = append(out, "    "+m.st.bold.Render(padRight(r[0], 13))+"  "+strings.TrimLeft(v[0], " "))
		out = append(out, v[1:]...)
	}
	if m.saving {
		out = append(out, "", m.cursor(true)+m.savePath.View())
	}
	if m.saveNote != "" {
		note := wrap(m.saveNote, m.w(), 2)
		for _, l := range note {
			if m.saveError {
				l = m.st.fail.Render(l)
			}
			out = append(out, l)
		}
	}
	return out
}

// settingsText says what the settings answers will do, for the confirm
// step: the domain, TLS, pull secret and high availability.
func (m *Model) settingsText() (domain, tls, pull, ha string) {
	a := m.a
	keep := m.mode() == ModeUpgrade
	or := func(v, install, upgrade string) string {
		switch {
		case v != "":
			return v
		case keep:
			return upgrade
		}
		return install
	}
	noDomain := "none: functions are reachable only inside the cluster"
	if m.defaultDomain != "" {
		noDomain = m.defaultDomain + " (the default)"
	}
	domain = or(a.Domain, noDomain, "keep the installed one")
	if a.TLSCert != "" || a.TLSKey != "" {
		tls = "certificate " + or(a.TLSCert, "none", "none") + ", key " + or(a.TLSKey, "none", "none")
		if a.TLSRedirectHTTP {
			tls += "; HTTP redirects to HTTPS"
		}
	}
	tls = or(tls, "none (HTTP only)", "keep the installed one")
	pull = or(a.PullSecret, "none", "keep the installed one")
	replicas := a.HAReplicas
	switch replicas {
	case "0":
		replicas = ""
		if !keep {
			replicas = "off"
		}
	case "":
	default:
		replicas += " replicas of each control plane"
	}
	ha = or(replicas, "off", "keep the installed setting")
	return domain, tls, pull, ha
}

func (m *Model) summaryTitle() string {
	if m.runErr != nil {
		return m.st.fail.Render(strings.TrimSpace(m.g.fail)) + " " + m.st.title.Render(fmt.Sprintf("tmbox %s failed", m.mode()))
	}
	verb := "installed"
	if m.mode() == ModeUpgrade {
		verb = "upgraded to"
	}
	return m.st.ok.Render(strings.TrimSpace(m.g.pass)) + " " + m.st.title.Render(fmt.Sprintf("tmbox %s release %s in %s", verb, m.summary.Release, fmtDuration(m.summary.Took)))
}

func (m *Model) viewSummary() []string {
	s := m.summary
	w := m.w()
	var out []string
	if m.runErr != nil {
		for _, l := range wrap(m.runErr.Error(), w, 2) {
			out = append(out, m.st.fail.Render(l))
		}
		if m.run != nil {
			for _, p := range m.run.phases {
				if p.status == phaseFailed {
					out = append(out, "", fmt.Sprintf("  The %s phase failed after %s.", p.name, fmtDuration(p.took)))
				}
			}
		}
		if s.LogFile != "" {
			out = append(out, "")
			out = append(out, wrap("The log is at "+s.LogFile+".", w, 2)...)
		}
		out = append(out, "")
		out = append(out, m.para("Running the same command again resumes: phases already done are verified in a moment and the failed one is redone.")...)
	} else {
		if len(s.Versions) > 0 {
			out = append(out, "  "+m.st.bold.Render("Versions"))
			nameW := 0
			for _, c := range s.Versions {
				nameW = max(nameW, len(c.Name))
			}
			for _, c := range s.Versions {
				out = append(out, "    "+padRight(c.Name, nameW)+"  "+c.Version)
			}
			out = append(out, "")
		}
		functions := s.Functions
		if functions == "" {
			functions = "reachable only inside the cluster: no domain is set (tmbox configure --domain sets one)"
		}
		for _, kv := range [][2]string{{"Ingress", s.Ingress}, {"Functions", functions}, {"Log", s.LogFile}} {
			if kv[1] == "" {
				continue
			}
			v := wrap(kv[1], w, 13)
			out = append(out, "  "+m.st.bold.Render(padRight(kv[0], 9))+"  "+strings.TrimLeft(v[0], " "))
			out = append(out, v[1:]...)
		}
	}
	if len(s.Next) > 0 {
		out = append(out, "", "  "+m.st.bold.Render("Next"))
		for _, n := range s.Next {
			out = append(out, wrapCommand(n, w, 4)...)
		}
	}
	return out
}
