package tui

import (
	"fmt"
	"slices"

	tea "github.com/charmbracelet/bubbletea"
)

// The preflight step's actions on a check that did not pass: a failed
// check can be ignored for the run (as --ignore-preflight-errors), and a
// check with a fix can have it applied after the user consented to the
// exact changes (as --fix asks). Either re-runs the checks.

// actionable reports whether the preflight step offers an action on c.
func actionable(c Check) bool {
	return c.Status == StatusFail || (c.Status != StatusPass && c.Fix != nil)
}

// selectedCheck is the check the preflight step's actions apply to.
func (m *Model) selectedCheck() (Check, bool) {
	if m.pfCursor < 0 || m.pfCursor >= len(m.pfChecks) {
		return Check{}, false
	}
	return m.pfChecks[m.pfCursor], true
}

// setChecks records the checks and selects the first one with an action.
func (m *Model) setChecks(checks []Check, err error) {
	m.pfChecks, m.pfErr = checks, err
	m.pfCursor = slices.IndexFunc(checks, actionable)
}

// moveCheck selects the next (d > 0) or previous check with an action,
// and reports whether there was one to select.
func (m *Model) moveCheck(d int) bool {
	if m.pfCursor < 0 {
		return false
	}
	for i := m.pfCursor + d; i >= 0 && i < len(m.pfChecks); i += d {
		if actionable(m.pfChecks[i]) {
			m.pfCursor = i
			return true
		}
	}
	return true // at the first or last: stay
}

// preflightKey handles a key on the preflight step (enter and esc are
// handled before).
func (m *Model) preflightKey(s string) tea.Cmd {
	switch s {
	case "tab":
		return m.next()
	case "shift+tab":
		m.back()
		return nil
	}
	if m.pf.running || m.fixTask.running {
		return nil
	}
	switch s {
	case "r":
		m.pfNote = ""
		return m.startPreflight()
	case "up", "k", "down", "j":
		if m.moveCheck(step(s)) {
			return nil
		}
	case "i":
		if c, ok := m.selectedCheck(); ok && c.Status == StatusFail {
			if !slices.Contains(m.a.IgnorePreflightErrors, c.Name) {
				m.a.IgnorePreflightErrors = append(slices.Clone(m.a.IgnorePreflightErrors), c.Name)
			}
			m.pfNote, m.pfNoteFail = fmt.Sprintf("ignoring %s for this run: its failure is only a warning", c.Name), false
			return m.startPreflight()
		}
		return nil
	case "f":
		if c, ok := m.selectedCheck(); ok && c.Fix != nil {
			m.fixAsk, m.fixCheck, m.pfNote = true, c.Name, ""
		}
		return nil
	}
	m.scrollKey(s)
	return nil
}

// fixKey answers the question whether to apply the selected check's fix.
func (m *Model) fixKey(s string) tea.Cmd {
	switch s {
	case "y", "Y":
		m.fixAsk = false
		name := m.fixCheck
		m.pfNote = ""
		ctx, seq := m.fixTask.start(m.ctx)
		b, a := m.opts.Backend, m.a
		return tea.Batch(func() tea.Msg {
			return fixMsg{seq, name, b.Fix(ctx, a, name)}
		}, m.spin())
	case "n", "N", "esc":
		m.fixAsk = false
	}
	return nil
}

// fixDone shows how the fix went and, when it was applied, re-runs the
// checks.
func (m *Model) fixDone(msg fixMsg) tea.Cmd {
	if msg.err != nil {
		m.pfNote, m.pfNoteFail = fmt.Sprintf("the fix of %s failed: %v", msg.check, msg.err), true
		return nil
	}
	cmd := m.startPreflight()
	m.pfNote, m.pfNoteFail = fmt.Sprintf("applied the fix of %s; the checks run again", msg.check), false
	return cmd
}
