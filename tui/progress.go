package tui

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"
)

// Phase statuses on the progress screen.
const (
	phasePending = "pending"
	phaseRunning = "running"
	phaseDone    = "done"
	phaseFailed  = "failed"
	phaseSkipped = "skipped"
	// phaseCancelled is a phase the user's cancel cut short.
	phaseCancelled = "cancelled"
)

// cancelledError is the error of a cancelled run (see ErrCancelled).
type cancelledError struct{}

// Error is ErrCancelled's message alone.
func (cancelledError) Error() string { return ErrCancelled.Error() }

// Unwrap makes the error ErrCancelled and context.Canceled.
func (cancelledError) Unwrap() []error { return []error{ErrCancelled, context.Canceled} }

// phaseState is a row of the progress screen: one of Backend.Phases, or a
// phase a phase event named that the list lacks (inserted before the first
// phase still pending, so the rows stay in run order and nothing is lost).
type phaseState struct {
	name   string
	title  string
	status string
	start  time.Time
	took   time.Duration
	note   string
}

// runState is the progress screen: Backend.Run going in its own goroutine,
// its events arriving on msgs.
type runState struct {
	ctx    context.Context
	cancel context.CancelFunc
	msgs   chan tea.Msg
	done   chan struct{}
	work   func()

	once     sync.Once
	launched bool

	phases   []*phaseState
	waiting  string
	progress string
	log      []string
	showLog  bool
	vp       viewport.Model

	confirm    bool // asking "cancel the install? y/n"
	cancelling bool
	cancelled  bool // Run returned after the cancel
	finished   bool
}

// startRun starts Backend.Run (in the returned tea.Cmd) and shows progress.
func (m *Model) startRun() tea.Cmd {
	ctx, cancel := context.WithCancel(m.ctx)
	rs := &runState{
		ctx:    ctx,
		cancel: cancel,
		msgs:   make(chan tea.Msg, 256),
		done:   make(chan struct{}),
	}
	m.phases = m.opts.Backend.Phases(m.a) // the final answers' (a bundle may add a phase)
	for _, p := range m.phases {
		rs.phases = append(rs.phases, &phaseState{name: p.Name, title: p.Title, status: phasePending})
	}
	stop, b, a := m.stop, m.opts.Backend, m.a
	send := func(msg tea.Msg) {
		select {
		case rs.msgs <- msg:
		case <-stop:
		}
	}
	rs.work = func() {
		defer close(rs.done)
		defer cancel()
		s, err := b.Run(ctx, a, func(e Event) { send(runEventMsg{e}) })
		send(runDoneMsg{s, err})
	}
	rs.vp = viewport.New(0, 0)
	m.run = rs
	rs.resize(m)
	cmds := []tea.Cmd{func() tea.Msg {
		rs.launch()
		return rs.wait()
	}, m.spin()}
	if m.opts.Plain {
		cmds = append(cmds, clockTick())
	}
	return tea.Batch(cmds...)
}

// launch starts Backend.Run once.
func (rs *runState) launch() {
	rs.once.Do(func() {
		rs.launched = true
		go rs.work()
	})
}

// wait returns the next message from the run.
func (rs *runState) wait() tea.Msg {
	select {
	case msg := <-rs.msgs:
		return msg
	case <-rs.done:
		// Run has returned: its last message is in msgs unless the
		// program has stopped.
		select {
		case msg := <-rs.msgs:
			return msg
		default:
			return nil
		}
	}
}

// stopAndWait cancels the run and waits until Backend.Run returns.
func (rs *runState) stopAndWait() {
	rs.cancel()
	rs.once.Do(func() {})
	if rs.launched {
		<-rs.done
	}
}

// phase is the row of the named phase. A phase event (add) for a phase
// the list lacks adds its row before the first pending one; any other
// event for it has no row.
func (rs *runState) phase(name string, add bool) *phaseState {
	if name == "" {
		return nil
	}
	for _, p := range rs.phases {
		if p.name == name {
			return p
		}
	}
	if !add {
		return nil
	}
	p := &phaseState{name: name, status: phasePending}
	at := slices.IndexFunc(rs.phases, func(p *phaseState) bool { return p.status == phasePending })
	if at < 0 {
		at = len(rs.phases)
	}
	rs.phases = slices.Insert(rs.phases, at, p)
	return p
}

// running is the phase running last, if any.
func (rs *runState) running() *phaseState {
	for i := len(rs.phases) - 1; i >= 0; i-- {
		if rs.phases[i].status == phaseRunning {
			return rs.phases[i]
		}
	}
	return nil
}

// apply records an event.
func (rs *runState) apply(m *Model, e Event) {
	var p *phaseState
	switch e.Type {
	case EventPhaseStart, EventPhaseDone, EventPhaseFail, EventPhaseSkip:
		p = rs.phase(e.Phase, true)
	}
	switch e.Type {
	case EventPhaseStart:
		if p != nil {
			p.status, p.start, p.note = phaseRunning, e.Time, ""
			if p.title == "" {
				p.title = e.Message
			}
			if p.start.IsZero() {
				p.start = m.now()
			}
		}
		rs.waiting, rs.progress = "", ""
	case EventPhaseDone:
		if p != nil {
			p.status, p.took, p.note = phaseDone, e.Duration, e.Message
		}
		rs.waiting, rs.progress = "", ""
	case EventPhaseSkip:
		if p != nil {
			p.status, p.note = phaseSkipped, e.Message
		}
	case EventPhaseFail:
		if p != nil {
			p.status, p.took, p.note = phaseFailed, e.Duration, e.Error
			if rs.cancelling {
				// What the cancel cut short, not why the phase failed.
				p.status, p.note = phaseCancelled, "cancelled"
			}
		}
		rs.waiting, rs.progress = "", ""
	case EventWaiting:
		rs.waiting = e.Message
	case EventProgress:
		rs.progress = e.Message
	}
	atBottom := rs.vp.AtBottom()
	rs.log = append(rs.log, logLine(e))
	rs.setLog(m.w())
	if atBottom {
		rs.vp.GotoBottom()
	}
}

// logLine formats an event as the plain reporter does.
func logLine(e Event) string {
	var b strings.Builder
	if !e.Time.IsZero() {
		b.WriteString(e.Time.Format("15:04:05") + " ")
	}
	if e.Phase != "" {
		b.WriteString("[" + e.Phase + "] ")
	}
	switch e.Type {
	case EventPhaseDone:
		b.WriteString("done in " + fmtDuration(e.Duration))
		if e.Message != "" {
			b.WriteString(": " + e.Message)
		}
	case EventPhaseSkip:
		b.WriteString("skipped")
		if e.Message != "" {
			b.WriteString(": " + e.Message)
		}
	case EventPhaseFail:
		b.WriteString("FAILED after " + fmtDuration(e.Duration) + ": " + e.Error)
	case EventWaiting:
		b.WriteString("waiting: " + e.Message)
	default:
		b.WriteString(e.Message)
		if e.Error != "" {
			b.WriteString(": " + e.Error)
		}
	}
	return b.String()
}

// logHeight is the log pane's height.
func (rs *runState) logHeight(m *Model) int {
	if m.height <= 0 {
		return 10
	}
	// title, blank, phases, blank, bar, blank, waiting (2), blank, log
	// title, footer (2)
	used := 2 + len(rs.phases) + 1 + 1 + 1 + 2 + 1 + 1 + 2
	return max(m.height-used, 3)
}

func (rs *runState) resize(m *Model) {
	rs.vp.Width = m.w()
	rs.vp.Height = rs.logHeight(m)
	rs.setLog(m.w())
}

func (rs *runState) setLog(width int) {
	var lines []string
	for _, l := range rs.log {
		lines = append(lines, wrap(l, width, 2)...)
	}
	rs.vp.SetContent(strings.Join(lines, "\n"))
}

func (m *Model) progressKey(s string) tea.Cmd {
	rs := m.run
	if rs.confirm {
		switch s {
		case "y", "Y", "ctrl+c":
			rs.confirm, rs.cancelling = false, true
			rs.cancel()
		case "n", "N", "esc":
			rs.confirm = false
		}
		return nil
	}
	switch s {
	case "ctrl+c":
		if !rs.cancelling && !rs.finished {
			rs.confirm = true
		}
	case "l":
		rs.showLog = !rs.showLog
		rs.vp.GotoBottom()
	case "up", "k":
		rs.vp.ScrollUp(1)
	case "down", "j":
		rs.vp.ScrollDown(1)
	case "pgup":
		rs.vp.PageUp()
	case "pgdown":
		rs.vp.PageDown()
	case "home", "g":
		rs.vp.GotoTop()
	case "end", "G":
		rs.vp.GotoBottom()
	}
	return nil
}

func (m *Model) viewProgress() string {
	rs := m.run
	verb := "installing"
	if m.mode() == ModeUpgrade {
		verb = "upgrading to"
	}
	title := fmt.Sprintf("%s %s %s release %s on %s", m.st.title.Render(m.title()), m.g.dot, verb, m.a.Release, m.targetText())
	var body []string
	nameW := 0
	for _, p := range rs.phases {
		nameW = max(nameW, len(p.name))
	}
	now := m.now()
	finished := 0
	for _, p := range rs.phases {
		var marker, took string
		switch p.status {
		case phaseRunning:
			if m.opts.Plain {
				marker = m.g.running
			} else {
				marker = m.spinner.View()
			}
			took = fmtDuration(now.Sub(p.start))
		case phaseDone:
			marker, took = m.st.ok.Render(m.g.pass), fmtDuration(p.took)
			finished++
		case phaseFailed:
			marker, took = m.st.fail.Render(m.g.fail), fmtDuration(p.took)
			finished++
		case phaseSkipped:
			marker, took = m.st.faint.Render(m.g.skip), "skipped"
			finished++
		case phaseCancelled:
			marker, took = m.st.warn.Render(m.g.cancelled), fmtDuration(p.took)
		default:
			marker = m.st.faint.Render(m.g.pending)
		}
		line := "  " + marker + " " + padRight(p.name, nameW) + "  " + padRight(took, 8)
		if p.note != "" {
			note := p.note
			if p.status == phaseFailed {
				note = m.st.fail.Render(note)
			} else {
				note = m.st.faint.Render(note)
			}
			line += "  " + note
		}
		body = append(body, strings.TrimRight(line, " "))
	}
	body = append(body, "", "  "+m.bar(finished, len(rs.phases), min(m.w()-20, 40)))
	if !rs.cancelled { // a cancelled run waits for nothing
		body = append(body, "")
	}
	switch {
	case rs.cancelled:
	case rs.waiting != "":
		w := wrap("waiting: "+rs.waiting, m.w(), 2)
		body = append(body, m.st.warn.Render(w[0]))
		if len(w) > 1 {
			body = append(body, m.st.warn.Render(w[1]))
		}
	case rs.progress != "":
		body = append(body, wrap(rs.progress, m.w(), 2)[0])
	default:
		if p := rs.running(); p != nil && p.title != "" {
			body = append(body, m.st.faint.Render(wrap(p.name+": "+p.title+m.g.ellipsis, m.w(), 2)[0]))
		}
	}
	if rs.showLog {
		body = append(body, "", "  "+m.st.bold.Render("log")+m.st.faint.Render(fmt.Sprintf(" (%d events; up/down scroll)", len(rs.log))))
		body = append(body, strings.Split(rs.vp.View(), "\n")...)
	}
	var footer []string
	switch {
	case rs.cancelled:
		footer = append(footer, m.st.warn.Render(ErrCancelled.Error()))
	case rs.cancelling:
		footer = append(footer, m.st.warn.Render(fmt.Sprintf("cancelling %s stopping at a safe point%s", m.g.dash, m.g.ellipsis)))
	case rs.confirm:
		footer = append(footer, m.st.bold.Render(fmt.Sprintf("cancel the %s? y/n", m.mode())))
	default:
		logHelp := "l show log"
		if rs.showLog {
			logHelp = "l hide log"
		}
		footer = append(footer, m.help(logHelp, "ctrl+c cancel"))
	}
	return m.frame(title, body, -1, footer)
}

// bar draws done of total as a bar of width cells.
func (m *Model) bar(done, total, width int) string {
	width = max(width, 10)
	full := 0
	if total > 0 {
		full = done * width / total
	}
	bar := m.st.ok.Render(strings.Repeat(m.g.barFull, full)) + m.st.faint.Render(strings.Repeat(m.g.barEmpty, width-full))
	return fmt.Sprintf("[%s] %d/%d phases", bar, done, total)
}
