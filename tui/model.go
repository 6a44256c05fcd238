package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/spinner"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

// screen is one step of the wizard.
type screen int

const (
	screenWelcome screen = iota
	screenTarget
	screenRelease
	screenComponents
	screenAirGap
	screenOverlay
	screenSettings
	screenPreflight
	screenPlan
	screenConfirm
	screenProgress
	screenSummary
)

// wizardSteps is how many screens come before progress.
const wizardSteps = int(screenProgress)

func (s screen) String() string {
	return [...]string{"welcome", "target", "release", "components", "air gap", "Istio overlay",
		"settings", "preflight", "plan", "confirm", "progress", "summary"}[s]
}

// Air-gap form fields.
const (
	fieldBundle = iota
	fieldBundleKey
	fieldRegistry
	fieldMirror
	airGapFields
)

// Settings form rows. Each is a text input but the redirect, which is a
// toggle.
const (
	setDomain = iota
	setTLSCert
	setTLSKey
	setTLSRedirect
	setPullSecret
	setHAReplicas
	settingsRows
)

// Messages.
type (
	contextsMsg struct {
		names   []string
		current string
		err     error
	}
	releasesMsg struct {
		releases []Release
		err      error
	}
	preflightMsg struct {
		seq    int
		checks []Check
		err    error
	}
	planMsg struct {
		seq   int
		lines []PlanLine
		err   error
	}
	installedMsg struct {
		seq  int
		inst *Installation
		err  error
	}
	fixMsg struct {
		seq   int
		check string
		err   error
	}
	savedMsg struct {
		path string
		err  error
	}
	runEventMsg struct{ e Event }
	runDoneMsg  struct {
		summary Summary
		err     error
	}
	ctxDoneMsg struct{ err error }
	clockMsg   struct{}
)

// Model is the wizard, a tea.Model. Make it with New (or let Run make it);
// after the program has ended, Result returns what happened.
type Model struct {
	opts     Options
	now      func() time.Time
	ctx      context.Context
	stop     chan struct{} // closed when the program has ended
	stopOnce sync.Once

	r  *lipgloss.Renderer
	st styles
	g  glyphs

	width, height int
	screen        screen
	errs          []string
	scroll        int

	a Answers

	// phases are Backend.Phases: the progress screen's rows.
	phases []Phase

	// welcome: what the cluster runs (Backend.Installed), and whether the
	// wizard switched to an upgrade because of it.
	instTask    bgTask
	instDone    bool
	installed   *Installation
	instApplied bool
	upgradeTo   string // the release the switch upgrades to
	// initialComps preselect the components (Options.Initial's, or the
	// installed ones of an upgrade).
	initialComps []string

	// target
	ctxLoaded    bool
	contexts     []string
	currentCtx   string
	ctxErr       error
	targetCursor int
	clusterName  textinput.Model

	// release
	relLoaded bool
	releases  []Release
	relErr    error
	relCursor int

	// components
	selected   map[string]bool
	compCursor int // index into the optional components

	// air gap and overlay
	airGap   [airGapFields]textinput.Model
	airFocus int
	overlay  textinput.Model

	// settings
	setInput      [settingsRows]textinput.Model // setTLSRedirect's is unused
	setFocus      int
	tlsRedirect   bool
	defaultDomain string // Backend.DefaultDomain of the answers so far

	// preflight: the checks, the selected one (an index into pfChecks of
	// a check with an action, -1 for none), and a fix asked for or
	// applying.
	pf         bgTask
	pfChecks   []Check
	pfErr      error
	pfCursor   int
	fixAsk     bool
	fixTask    bgTask
	fixCheck   string
	pfNote     string
	pfNoteFail bool

	// plan
	planTask  bgTask
	planLines []PlanLine
	planErr   error

	// confirm
	saving    bool
	savePath  textinput.Model
	saveNote  string
	saveError bool

	spinner spinner.Model
	run     *runState

	// summary and result
	summary Summary
	runErr  error
	result  error
}

// New makes the wizard. It renders without colours; Run renders with the
// colours its output supports (none in plain mode).
func New(opts Options) *Model {
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.Ascii)
	return newModel(opts, r)
}

func newModel(opts Options, r *lipgloss.Renderer) *Model {
	if opts.Mode == "" {
		opts.Mode = ModeInstall
	}
	m := &Model{
		opts:   opts,
		now:    opts.Now,
		ctx:    context.Background(),
		stop:   make(chan struct{}),
		r:      r,
		st:     newStyles(r),
		g:      newGlyphs(opts.Plain),
		a:      opts.Initial,
		result: ErrAborted,

		pfCursor:     -1,
		initialComps: opts.Initial.Components,
	}
	m.a.Mode = opts.Mode
	m.a.IgnorePreflightErrors = slices.Clone(opts.Initial.IgnorePreflightErrors)
	if m.now == nil {
		m.now = time.Now
	}
	if opts.Backend != nil {
		m.phases = opts.Backend.Phases(m.a)
	}
	name := opts.Initial.ClusterName
	if name == "" {
		name = DefaultClusterName
	}
	m.clusterName = m.newInput("Cluster name: ", name, DefaultClusterName)
	m.airGap[fieldBundle] = m.newInput("Bundle file: ", opts.Initial.Bundle, "none")
	m.airGap[fieldBundleKey] = m.newInput("Bundle key:  ", opts.Initial.BundleKey, "none")
	m.airGap[fieldRegistry] = m.newInput("Registry:    ", opts.Initial.Registry, "HOST[:PORT][/PREFIX]")
	m.airGap[fieldMirror] = m.newInput("Mirror dir:  ", opts.Initial.Mirror, "none")
	m.overlay = m.newInput("Overlay file: ", opts.Initial.IstioOverlay, "none")
	m.setInput[setDomain] = m.newInput("Domain:        ", opts.Initial.Domain, "")
	m.setInput[setTLSCert] = m.newInput("TLS cert file: ", opts.Initial.TLSCert, "")
	m.setInput[setTLSKey] = m.newInput("TLS key file:  ", opts.Initial.TLSKey, "")
	m.setInput[setPullSecret] = m.newInput("Pull secret:   ", opts.Initial.PullSecret, "")
	m.setInput[setHAReplicas] = m.newInput("HA replicas:   ", opts.Initial.HAReplicas, "")
	m.tlsRedirect = opts.Initial.TLSRedirectHTTP
	m.setPlaceholders()
	m.savePath = m.newInput("Save to: ", DefaultConfigPath, "")
	m.spinner = spinner.New(spinner.WithSpinner(spinner.MiniDot), spinner.WithStyle(m.st.step))
	return m
}

// inputs are every text input of the wizard.
func (m *Model) inputs() []*textinput.Model {
	out := []*textinput.Model{&m.clusterName}
	for i := range m.airGap {
		out = append(out, &m.airGap[i])
	}
	out = append(out, &m.overlay)
	for i := range m.setInput {
		if i != setTLSRedirect {
			out = append(out, &m.setInput[i])
		}
	}
	return append(out, &m.savePath)
}

// setPlaceholders says in the settings' empty inputs what empty means:
// in upgrade mode the installed setting is kept; on install the domain is
// the Backend's default, the others are off.
func (m *Model) setPlaceholders() {
	none, domain := "none", "none"
	if m.defaultDomain != "" {
		domain = m.defaultDomain
	}
	ha := "0 (off)"
	if m.mode() == ModeUpgrade {
		none, domain, ha = "keep the installed one", "keep the installed one", "keep the installed setting"
	}
	m.setInput[setDomain].Placeholder = domain
	m.setInput[setTLSCert].Placeholder = none
	m.setInput[setTLSKey].Placeholder = none
	m.setInput[setPullSecret].Placeholder = none
	m.setInput[setHAReplicas].Placeholder = ha
}

func (m *Model) newInput(prompt, value, placeholder string) textinput.Model {
	ti := textinput.New()
	ti.Prompt = prompt
	ti.Placeholder = placeholder
	ti.SetValue(value)
	ti.CursorEnd()
	ti.Cursor.SetMode(cursor.CursorStatic)
	ti.PromptStyle = m.st.bold
	ti.TextStyle = m.r.NewStyle()
	ti.PlaceholderStyle = m.st.faint
	ti.CompletionStyle = m.st.faint
	ti.Cursor.Style = m.r.NewStyle()
	ti.Cursor.TextStyle = m.r.NewStyle()
	return ti
}

// Result returns the answers, the summary and the error once the program
// has ended: ErrAborted when the user quit before running, ErrCancelled when
// the run was cancelled, or Backend.Run's error.
func (m *Model) Result() (Answers, Summary, error) {
	return m.a, m.summary, m.result
}

// mode is what the run does: Options.Mode, or ModeUpgrade once the welcome
// screen found an older release installed.
func (m *Model) mode() Mode { return m.a.Mode }

// Init loads the contexts and releases, and watches the context.
func (m *Model) Init() tea.Cmd {
	b := m.opts.Backend
	cmds := []tea.Cmd{
		func() tea.Msg {
			names, cur, err := b.Contexts()
			return contextsMsg{names, cur, err}
		},
		func() tea.Msg {
			rels, err := b.Releases()
			return releasesMsg{rels, err}
		},
	}
	if cmd := m.startInstalled(); cmd != nil {
		cmds = append(cmds, cmd)
	}
	if done := m.ctx.Done(); done != nil {
		ctx, stop := m.ctx, m.stop
		cmds = append(cmds, func() tea.Msg {
			select {
			case <-done:
				return ctxDoneMsg{ctx.Err()}
			case <-stop:
				return nil
			}
		})
	}
	return tea.Batch(cmds...)
}

// Update handles a message.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.resize()
	case contextsMsg:
		m.setContexts(msg)
	case releasesMsg:
		m.setReleases(msg)
	case preflightMsg:
		if m.pf.done(msg.seq) {
			m.setChecks(msg.checks, msg.err)
		}
	case planMsg:
		if m.planTask.done(msg.seq) {
			m.planLines, m.planErr = msg.lines, msg.err
		}
	case installedMsg:
		if m.instTask.done(msg.seq) {
			m.instDone = true
			if msg.err == nil {
				m.installed = msg.inst
			}
			m.applyInstalled()
		}
	case fixMsg:
		if m.fixTask.done(msg.seq) {
			return m, m.fixDone(msg)
		}
	case savedMsg:
		if msg.err != nil {
			m.saveNote, m.saveError = fmt.Sprintf("could not save the answers: %v", msg.err), true
		} else {
			m.saveNote, m.saveError = fmt.Sprintf("saved the answers to %s", msg.path), false
		}
	case runEventMsg:
		if m.run != nil {
			m.run.apply(m, msg.e)
			return m, m.run.wait
		}
	case runDoneMsg:
		return m, m.runDone(msg)
	case ctxDoneMsg:
		return m, m.ctxDone(msg.err)
	case spinner.TickMsg:
		if m.spinning() {
			var cmd tea.Cmd
			m.spinner, cmd = m.spinner.Update(msg)
			return m, cmd
		}
	case clockMsg:
		if m.run != nil && !m.run.finished {
			return m, clockTick()
		}
	case tea.KeyMsg:
		return m, m.key(msg)
	}
	return m, nil
}

// spinning reports whether something runs in the background.
func (m *Model) spinning() bool {
	switch m.screen {
	case screenPreflight:
		return m.pf.running
	case screenPlan:
		return m.planTask.running
	case screenProgress:
		return m.run != nil && !m.run.finished
	}
	return false
}

// spin starts the spinner (not in plain mode, which has no animation).
func (m *Model) spin() tea.Cmd {
	if m.opts.Plain {
		return nil
	}
	return m.spinner.Tick
}

func clockTick() tea.Cmd {
	return tea.Tick(time.Second, func(time.Time) tea.Msg { return clockMsg{} })
}

func (m *Model) resize() {
	w := m.w()
	for _, ti := range m.inputs() {
		ti.Width = max(w-len(ti.Prompt)-8, 10)
	}
	if m.run != nil {
		m.run.resize(m)
	}
}

// w is the width to render at.
func (m *Model) w() int {
	if m.width <= 0 {
		return 80
	}
	return m.width
}

func (m *Model) setContexts(msg contextsMsg) {
	m.ctxLoaded, m.contexts, m.currentCtx, m.ctxErr = true, msg.names, msg.current, msg.err
	m.targetCursor = 0
	ctxIdx := func(name string) int {
		if i := slices.Index(m.contexts, name); name != "" && i >= 0 {
			return i + 1
		}
		return -1
	}
	switch {
	case m.a.Target == TargetKind:
	case ctxIdx(m.a.Context) > 0:
		m.targetCursor = ctxIdx(m.a.Context)
	case ctxIdx(m.currentCtx) > 0:
		m.targetCursor = ctxIdx(m.currentCtx)
	}
	m.focus()
}

func (m *Model) setReleases(msg releasesMsg) {
	m.relLoaded, m.releases, m.relErr = true, msg.releases, msg.err
	m.relCursor = len(m.releases) - 1
	if i := m.releaseIndex(m.a.Release); i >= 0 {
		m.relCursor = i
	}
	m.relCursor = max(m.relCursor, 0)
	m.applyInstalled()
}

// releaseIndex is the index of the named release, -1 when there is none.
func (m *Model) releaseIndex(name string) int {
	if name == "" {
		return -1
	}
	return slices.IndexFunc(m.releases, func(r Release) bool { return r.Name == name })
}

// release is the selected release, if any.
func (m *Model) release() (Release, bool) {
	if m.relCursor < len(m.releases) {
		return m.releases[m.relCursor], true
	}
	return Release{}, false
}

// optional lists the selected release's optional components.
func (m *Model) optional() []Component {
	r, _ := m.release()
	var out []Component
	for _, c := range r.Components {
		if !c.Required {
			out = append(out, c)
		}
	}
	return out
}

// components lists what will be installed, in the release's order.
func (m *Model) components() []string {
	r, _ := m.release()
	var out []string
	for _, c := range r.Components {
		if c.Required || m.isSelected(c.Name) {
			out = append(out, c.Name)
		}
	}
	return out
}

func (m *Model) isSelected(name string) bool {
	if m.selected == nil {
		return len(m.initialComps) == 0 || slices.Contains(m.initialComps, name)
	}
	return m.selected[name]
}

// goTo shows screen s.
func (m *Model) goTo(s screen) {
	m.screen = s
	m.scroll = 0
	m.errs = nil
	m.focus()
}

// focus focuses the text input the screen and its selection call for.
func (m *Model) focus() {
	for _, ti := range m.inputs() {
		ti.Blur()
	}
	switch m.screen {
	case screenTarget:
		if m.targetCursor == 0 {
			m.clusterName.Focus()
		}
	case screenAirGap:
		m.airGap[m.airFocus].Focus()
	case screenOverlay:
		m.overlay.Focus()
	case screenSettings:
		if m.setFocus != setTLSRedirect {
			m.setInput[m.setFocus].Focus()
		}
	case screenConfirm:
		if m.saving {
			m.savePath.Focus()
		}
	}
}

func (m *Model) fail(errs ...error) {
	m.errs = nil
	for _, err := range errs {
		if err != nil {
			m.errs = append(m.errs, err.Error())
		}
	}
}

// accept asks the Backend about the answers a as the current step made
// them: when the step's fields are fine it keeps them and returns true;
// otherwise it shows the step's errors and returns false.
func (m *Model) accept(a Answers) bool {
	if errs := m.invalid(m.screen, a); len(errs) > 0 {
		m.errs = errs
		return false
	}
	m.a = a
	return true
}

// next validates the screen's answers and moves on.
func (m *Model) next() tea.Cmd {
	m.errs = nil
	switch m.screen {
	case screenWelcome:
		m.goTo(screenTarget)
	case screenTarget:
		a := m.a
		if m.targetCursor == 0 {
			name := strings.TrimSpace(m.clusterName.Value())
			if name == "" {
				m.fail(errors.New("enter a cluster name"))
				return nil
			}
			a.Target, a.ClusterName, a.Context = TargetKind, name, ""
		} else {
			a.Target, a.Context, a.ClusterName = TargetExisting, m.contexts[m.targetCursor-1], ""
		}
		if !m.accept(a) {
			return nil
		}
		m.goTo(screenRelease)
	case screenRelease:
		switch {
		case m.relErr != nil:
			m.fail(fmt.Errorf("cannot list the releases: %w", m.relErr))
			return nil
		case !m.relLoaded:
			m.fail(errors.New("the releases are still loading"))
			return nil
		case len(m.releases) == 0:
			m.fail(errors.New("the catalog has no releases"))
			return nil
		}
		r, _ := m.release()
		a := m.a
		a.Release = r.Name
		if !m.accept(a) {
			return nil
		}
		if m.selected == nil {
			sel := map[string]bool{}
			for _, c := range r.Components {
				sel[c.Name] = m.isSelected(c.Name)
			}
			m.selected = sel
		}
		m.compCursor = 0
		m.goTo(screenComponents)
	case screenComponents:
		a := m.a
		a.Components = m.components()
		if !m.accept(a) {
			return nil
		}
		m.goTo(screenAirGap)
	case screenAirGap:
		a := m.a
		a.Bundle = expandPath(m.airGap[fieldBundle].Value())
		a.BundleKey = expandPath(m.airGap[fieldBundleKey].Value())
		a.Registry = strings.TrimSpace(m.airGap[fieldRegistry].Value())
		a.Mirror = expandPath(m.airGap[fieldMirror].Value())
		if !m.accept(a) {
			return nil
		}
		m.goTo(screenOverlay)
	case screenOverlay:
		a := m.a
		a.IstioOverlay = expandPath(m.overlay.Value())
		if !m.accept(a) {
			return nil
		}
		m.defaultDomain = m.opts.Backend.DefaultDomain(m.a)
		m.setPlaceholders()
		m.goTo(screenSettings)
	case screenSettings:
		a := m.a
		a.Domain = strings.TrimSpace(m.setInput[setDomain].Value())
		a.TLSCert = expandPath(m.setInput[setTLSCert].Value())
		a.TLSKey = expandPath(m.setInput[setTLSKey].Value())
		a.TLSRedirectHTTP = m.tlsRedirect
		a.PullSecret = expandPath(m.setInput[setPullSecret].Value())
		a.HAReplicas = strings.TrimSpace(m.setInput[setHAReplicas].Value())
		if !m.accept(a) {
			return nil
		}
		m.goTo(screenPreflight)
		m.pfNote = ""
		return m.startPreflight()
	case screenPreflight:
		if err := m.preflightBlocks(); err != nil {
			m.fail(err)
			return nil
		}
		m.goTo(screenPlan)
		return m.startPlan()
	case screenPlan:
		switch {
		case m.planTask.running:
			m.fail(errors.New("the plan is still being made"))
			return nil
		case fieldOf(m.planErr) != "":
			m.fail(fmt.Errorf("%s (%s)", errText(m.planErr), m.errAction(m.planErr)))
			return nil
		case m.planErr != nil:
			m.fail(fmt.Errorf("cannot make the plan: %w (%s)", m.planErr, m.errAction(m.planErr)))
			return nil
		}
		m.goTo(screenConfirm)
	case screenConfirm:
		m.goTo(screenProgress)
		return m.startRun()
	}
	return nil
}

// preflightBlocks says why the preflight screen cannot be left forwards.
func (m *Model) preflightBlocks() error {
	switch {
	case m.pf.running:
		return errors.New("the preflight checks are still running")
	case m.fixTask.running:
		return errors.New("the fix is being applied")
	case m.pfErr != nil:
		if fieldOf(m.pfErr) != "" {
			return fmt.Errorf("%s (%s)", errText(m.pfErr), m.errAction(m.pfErr))
		}
		return fmt.Errorf("the preflight checks could not run: %w (press r to retry, esc to go back)", m.pfErr)
	}
	if n := countStatus(m.pfChecks, StatusFail); n == 1 {
		return errors.New("1 preflight check failed: fix it and press r to re-run the checks, or press i to ignore it for this run (esc goes back)")
	} else if n > 1 {
		return fmt.Errorf("%d preflight checks failed: fix them and press r to re-run the checks, or choose one and press i to ignore it for this run (esc goes back)", n)
	}
	return nil
}

// fieldOf is the field an error of Preflight or Plan names (a
// *FieldError in its chain), "" when an answer cannot fix it.
func fieldOf(err error) string {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	return ""
}

// errText is the text to show for an error of Preflight or Plan: a
// *FieldError's message alone.
func errText(err error) string {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe.Message
	}
	return err.Error()
}

// errAction says what to do about an error of Preflight or Plan: go back
// and change the answer it names, or retry.
func (m *Model) errAction(err error) string {
	if f := fieldOf(err); f != "" {
		return "esc to go back and change " + fieldLabel(f)
	}
	return "r to retry, esc to go back"
}

// back returns to the previous screen; from a preflight or plan error an
// answer can fix, to the step of that answer, showing the error there.
func (m *Model) back() {
	var err error
	switch m.screen {
	case screenWelcome, screenProgress, screenSummary:
		return
	case screenPreflight:
		if m.fixTask.running {
			return // a fix is not interrupted half way
		}
		err = m.pfErr
		m.cancelPreflight()
	case screenPlan:
		err = m.planErr
		m.cancelPlan()
	}
	if f := fieldOf(err); f != "" {
		m.goTo(fieldStep(f))
		m.errs = []string{errText(err)}
		return
	}
	m.goTo(m.screen - 1)
}

func (m *Model) startPreflight() tea.Cmd {
	m.cancelPreflight()
	m.pfChecks, m.pfErr, m.pfCursor, m.fixAsk = nil, nil, -1, false
	return m.background(&m.pf, func(ctx context.Context, b Backend, a Answers, seq int) tea.Msg {
		checks, err := b.Preflight(ctx, a)
		return preflightMsg{seq, checks, err}
	})
}

func (m *Model) cancelPreflight() {
	if m.pf.stop() {
		m.pfErr = context.Canceled
	}
}

func (m *Model) startPlan() tea.Cmd {
	m.cancelPlan()
	m.planLines, m.planErr = nil, nil
	return m.background(&m.planTask, func(ctx context.Context, b Backend, a Answers, seq int) tea.Msg {
		lines, err := b.Plan(ctx, a)
		return planMsg{seq, lines, err}
	})
}

func (m *Model) cancelPlan() {
	if m.planTask.stop() {
		m.planErr = context.Canceled
	}
}

// background starts call as task t, on a copy of the answers, with the
// spinner running until its message arrives.
func (m *Model) background(t *bgTask, call func(ctx context.Context, b Backend, a Answers, seq int) tea.Msg) tea.Cmd {
	ctx, seq := t.start(m.ctx)
	b, a := m.opts.Backend, m.a
	return tea.Batch(func() tea.Msg { return call(ctx, b, a, seq) }, m.spin())
}

// bgTask is a cancellable background call whose stale results are
// dropped: each start gets a new sequence number, and a result counts only
// if it carries the current one.
type bgTask struct {
	seq     int
	running bool
	cancel  context.CancelFunc
}

// start begins a new run under parent and returns its context and number.
func (t *bgTask) start(parent context.Context) (context.Context, int) {
	t.stop()
	t.seq++
	t.running = true
	ctx, cancel := context.WithCancel(parent)
	t.cancel = cancel
	return ctx, t.seq
}

// done records the result numbered seq; false means it is stale.
func (t *bgTask) done(seq int) bool {
	if seq != t.seq {
		return false
	}
	t.running = false
	if t.cancel != nil {
		t.cancel()
		t.cancel = nil
	}
	return true
}

// stop cancels a running call (its result will be dropped) and reports
// whether one was running.
func (t *bgTask) stop() bool {
	if t.cancel != nil {
		t.cancel()
		t.cancel = nil
	}
	if !t.running {
		return false
	}
	t.seq++ // drop the cancelled run's result
	t.running = false
	return true
}

// abort ends the program before anything ran.
func (m *Model) abort(err error) tea.Cmd {
	m.cancelPreflight()
	m.cancelPlan()
	m.instTask.stop()
	m.result = ErrAborted
	if err != nil {
		m.result = fmt.Errorf("%w: %w", ErrAborted, err)
	}
	return tea.Quit
}

func (m *Model) ctxDone(err error) tea.Cmd {
	switch {
	case m.screen == screenSummary:
		return tea.Quit
	case m.run != nil:
		m.run.confirm = false
		if !m.run.cancelling {
			m.run.cancelling = true
			m.run.cancel()
		}
		return nil
	default:
		return m.abort(err)
	}
}

func (m *Model) runDone(msg runDoneMsg) tea.Cmd {
	rs := m.run
	rs.finished = true
	if m.ctx.Err() != nil {
		rs.cancelling = true // the caller cancelled; its message may still be on its way
	}
	if rs.cancelling && msg.err != nil {
		rs.cancelled = true
		rs.waiting, rs.progress = "", ""
		for _, p := range rs.phases {
			if p.status == phaseRunning {
				p.status, p.took, p.note = phaseCancelled, m.now().Sub(p.start), "cancelled"
			}
		}
		m.result = cancelledError{}
		m.summary = msg.summary
		return tea.Quit
	}
	m.summary, m.runErr, m.result = msg.summary, msg.err, msg.err
	if m.summary.LogFile == "" {
		m.summary.LogFile = m.opts.LogFile
	}
	m.goTo(screenSummary)
	return nil
}

// shutdown is called once the program has ended: it stops a run still
// going and waits until Backend.Run has returned.
func (m *Model) shutdown() {
	m.stopOnce.Do(func() { close(m.stop) })
	m.cancelPreflight()
	m.cancelPlan()
	m.instTask.stop()
	m.fixTask.stop()
	if m.run != nil {
		m.run.stopAndWait()
	}
}

// key handles a key.
func (m *Model) key(k tea.KeyMsg) tea.Cmd {
	s := k.String()
	switch m.screen {
	case screenProgress:
		return m.progressKey(s)
	case screenSummary:
		switch s {
		case "enter", "q", "esc", "ctrl+c":
			return tea.Quit
		}
		m.scrollKey(s)
		return nil
	}
	if s == "ctrl+c" {
		return m.abort(nil)
	}
	if m.screen == screenConfirm && m.saving {
		return m.saveKey(k)
	}
	if m.screen == screenPreflight && m.fixAsk {
		return m.fixKey(s)
	}
	m.errs = nil
	switch s {
	case "enter":
		return m.next()
	case "esc":
		if m.screen == screenWelcome {
			return m.abort(nil)
		}
		m.back()
		return nil
	}
	switch m.screen {
	case screenWelcome:
		switch s {
		case "tab":
			return m.next()
		case "q":
			return m.abort(nil)
		}
	case screenTarget:
		switch s {
		case "tab":
			return m.next()
		case "shift+tab":
			m.back()
		case "up", "down", "ctrl+p", "ctrl+n":
			n := len(m.contexts) + 1
			m.targetCursor = (m.targetCursor + step(s) + n) % n
			m.focus()
		default:
			if m.targetCursor == 0 {
				var cmd tea.Cmd
				m.clusterName, cmd = m.clusterName.Update(k)
				return cmd
			}
			switch s {
			case "k":
				m.targetCursor = max(m.targetCursor-1, 0)
				m.focus()
			case "j":
				m.targetCursor = min(m.targetCursor+1, len(m.contexts))
			}
		}
	case screenRelease:
		switch s {
		case "tab":
			return m.next()
		case "shift+tab":
			m.back()
		case "up", "k", "down", "j":
			if n := len(m.releases); n > 0 {
				m.relCursor = min(max(m.relCursor+step(s), 0), n-1)
			}
		}
	case screenComponents:
		opt := m.optional()
		switch s {
		case "tab":
			return m.next()
		case "shift+tab":
			m.back()
		case "up", "k", "down", "j":
			if n := len(opt); n > 0 {
				m.compCursor = min(max(m.compCursor+step(s), 0), n-1)
			}
		case " ", "x":
			if m.compCursor < len(opt) {
				name := opt[m.compCursor].Name
				m.selected[name] = !m.selected[name]
			}
		case "a":
			for _, c := range opt {
				m.selected[c.Name] = true
			}
		}
	case screenAirGap:
		switch s {
		case "tab", "down":
			if m.airFocus == airGapFields-1 {
				if s == "tab" {
					return m.next()
				}
				return nil
			}
			m.airFocus++
			m.focus()
		case "shift+tab", "up":
			if m.airFocus == 0 {
				if s == "shift+tab" {
					m.back()
				}
				return nil
			}
			m.airFocus--
			m.focus()
		default:
			var cmd tea.Cmd
			m.airGap[m.airFocus], cmd = m.airGap[m.airFocus].Update(k)
			return cmd
		}
	case screenOverlay:
		switch s {
		case "tab":
			return m.next()
		case "shift+tab":
			m.back()
		default:
			var cmd tea.Cmd
			m.overlay, cmd = m.overlay.Update(k)
			return cmd
		}
	case screenSettings:
		return m.settingsKey(k)
	case screenPreflight:
		return m.preflightKey(s)
	case screenPlan:
		switch s {
		case "tab":
			return m.next()
		case "shift+tab":
			m.back()
		case "r":
			return m.startPlan()
		default:
			m.scrollKey(s)
		}
	case screenConfirm:
		switch s {
		case "tab":
			return m.next()
		case "shift+tab":
			m.back()
		case "s":
			m.saving, m.saveNote = true, ""
			m.focus()
		}
	}
	return nil
}

// settingsKey handles a key on the settings step: tab and the arrows move
// between the rows (tab past the last leaves the step, shift+tab before
// the first goes back), space toggles the redirect, other keys edit the
// focused input.
func (m *Model) settingsKey(k tea.KeyMsg) tea.Cmd {
	s := k.String()
	switch s {
	case "tab", "down":
		if m.setFocus == settingsRows-1 {
			if s == "tab" {
				return m.next()
			}
			return nil
		}
		m.setFocus++
		m.focus()
		return nil
	case "shift+tab", "up":
		if m.setFocus == 0 {
			if s == "shift+tab" {
				m.back()
			}
			return nil
		}
		m.setFocus--
		m.focus()
		return nil
	}
	if m.setFocus == setTLSRedirect {
		if s == " " || s == "x" {
			m.tlsRedirect = !m.tlsRedirect
		}
		return nil
	}
	var cmd tea.Cmd
	m.setInput[m.setFocus], cmd = m.setInput[m.setFocus].Update(k)
	return cmd
}

func (m *Model) saveKey(k tea.KeyMsg) tea.Cmd {
	switch k.String() {
	case "esc":
		m.saving = false
		m.focus()
		return nil
	case "enter":
		p := expandPath(m.savePath.Value())
		if p == "" {
			m.saveNote, m.saveError = "enter a path to save the answers to", true
			return nil
		}
		m.saving = false
		m.focus()
		b, a := m.opts.Backend, m.a
		m.saveNote, m.saveError = "saving to "+p+m.g.ellipsis, false
		return func() tea.Msg { return savedMsg{p, b.SaveConfig(p, a)} }
	}
	var cmd tea.Cmd
	m.savePath, cmd = m.savePath.Update(k)
	return cmd
}

// scrollKey scrolls the screen's body.
func (m *Model) scrollKey(s string) {
	page := max(m.height-6, 1)
	switch s {
	case "up", "k":
		m.scroll--
	case "down", "j":
		m.scroll++
	case "pgup":
		m.scroll -= page
	case "pgdown", " ":
		m.scroll += page
	case "home", "g":
		m.scroll = 0
	case "end", "G":
		m.scroll = 1 << 20
	default:
		return
	}
	body, _ := m.body()
	m.scroll = min(max(m.scroll, 0), max(len(body)-1, 0))
}

func step(s string) int {
	switch s {
	case "up", "k", "ctrl+p":
		return -1
	}
	return 1
}

func countStatus(checks []Check, status string) int {
	n := 0
	for _, c := range checks {
		if c.Status == status {
			n++
		}
	}
	return n
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
