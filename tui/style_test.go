package tui

import (
	"strings"
	"testing"

	"github.com/charmbracelet/x/ansi"
)

// TestWrapCommand: a command too wide for the screen is broken between
// words outside quotes with shell continuations, so that the lines, as a
// shell reads them, are the command again; a trailing comment stays whole.
func TestWrapCommand(t *testing.T) {
	tests := []struct {
		cmd   string
		width int
		lines int
	}{
		{"tmbox status", 100, 1},
		{"kubectl --kubeconfig /home/me/.local/state/tmbox/dev/kubeconfig get pods -A | grep -E '^(NAMESPACE|istio-system|knative-serving) '", 60, 4},
		{"tmbox upgrade --to RELEASE --kubeconfig /home/me/.local/state/tmbox/dev/kubeconfig   # tmbox versions lists the releases", 70, 3},
		{"echo 'a quoted string with spaces that must not be broken'", 20, 2},
	}
	for _, tt := range tests {
		got := wrapCommand(tt.cmd, tt.width, 4)
		if len(got) != tt.lines {
			t.Errorf("%q at %d: %d lines, want %d:\n%s", tt.cmd, tt.width, len(got), tt.lines, strings.Join(got, "\n"))
		}
		joined := strings.Join(got, "\n")
		for _, l := range got[:len(got)-1] {
			if !strings.HasSuffix(l, " \\") {
				t.Errorf("a broken line does not continue: %q", l)
			}
		}
		// As the shell reads it: continuations removed, runs of blanks one.
		shell := strings.Join(strings.Fields(strings.ReplaceAll(strings.TrimPrefix(strings.TrimSpace(joined), "$ "), "\\\n", " ")), " ")
		if want := strings.Join(strings.Fields(tt.cmd), " "); shell != want {
			t.Errorf("as the shell reads it:\n%s\nwant\n%s", shell, want)
		}
		for _, l := range got {
			if q := strings.Count(l, "'"); q%2 != 0 {
				t.Errorf("a line breaks inside quotes: %q", l)
			}
			if ansi.StringWidth(l) > tt.width && !strings.Contains(l, "'") && !strings.Contains(l, "#") {
				t.Errorf("line wider than %d: %q", tt.width, l)
			}
		}
	}
}
