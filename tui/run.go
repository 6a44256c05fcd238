package tui

import (
	"context"
	"errors"
	"fmt"
	"io"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

// Run runs the wizard on in and out until the user leaves the summary or
// quits, and returns Result. It uses the alternate screen unless
// opts.Plain, and the colours out supports (none when opts.Plain).
//
// Run installs no signal handler: cancel ctx on SIGINT/SIGTERM (for example
// with signal.NotifyContext). A cancelled ctx is handled like a confirmed
// Ctrl-C: before the run it ends the wizard with ErrAborted; during the run it
// cancels Backend.Run and waits for it to return (ErrCancelled). Run never
// returns while Backend.Run is still running.
func Run(ctx context.Context, opts Options, in io.Reader, out io.Writer) (Answers, Summary, error) {
	if opts.Backend == nil {
		return opts.Initial, Summary{}, errors.New("tui: Options.Backend is nil")
	}
	r := lipgloss.NewRenderer(out)
	if opts.Plain {
		r.SetColorProfile(termenv.Ascii)
	}
	m := newModel(opts, r)
	m.ctx = ctx
	popts := []tea.ProgramOption{tea.WithInput(in), tea.WithOutput(out), tea.WithoutSignalHandler()}
	if !opts.Plain {
		popts = append(popts, tea.WithAltScreen())
	}
	_, err := tea.NewProgram(m, popts...).Run()
	m.shutdown()
	a, s, rerr := m.Result()
	if err != nil && !errors.Is(err, tea.ErrProgramKilled) {
		return a, s, fmt.Errorf("tui: %w", err)
	}
	return a, s, rerr
}
