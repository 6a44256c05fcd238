package tui

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
)

// styles are the wizard's styles, made from one renderer so that the colour
// profile is the output's (or none in plain mode and tests).
type styles struct {
	title, step, faint, bold, ok, warn, fail, accent, key lipgloss.Style
}

func newStyles(r *lipgloss.Renderer) styles {
	return styles{
		title:  r.NewStyle().Bold(true),
		step:   r.NewStyle().Foreground(lipgloss.Color("6")),
		faint:  r.NewStyle().Foreground(lipgloss.Color("8")),
		bold:   r.NewStyle().Bold(true),
		ok:     r.NewStyle().Foreground(lipgloss.Color("2")),
		warn:   r.NewStyle().Foreground(lipgloss.Color("3")),
		fail:   r.NewStyle().Foreground(lipgloss.Color("1")),
		accent: r.NewStyle().Foreground(lipgloss.Color("6")).Bold(true),
		key:    r.NewStyle().Bold(true),
	}
}

// glyphs are the symbols the views use; plain mode has ASCII ones.
type glyphs struct {
	pass, warn, fail, skip, pending, running    string
	cancelled                                   string
	on, off, cursor, arrow, dot, dash, ellipsis string
	barFull, barEmpty, up, down                 string
}

func newGlyphs(plain bool) glyphs {
	if plain {
		return glyphs{
			pass: "ok  ", warn: "warn", fail: "FAIL", skip: "skip", pending: "    ", running: "... ", cancelled: "stop",
			on: "[x]", off: "[ ]", cursor: ">", arrow: "->", dot: "-", dash: "--", ellipsis: "...",
			barFull: "#", barEmpty: "-", up: "^", down: "v",
		}
	}
	return glyphs{
		pass: "✓", warn: "!", fail: "✗", skip: "-", pending: "·", running: "", cancelled: "■",
		on: "[x]", off: "[ ]", cursor: "›", arrow: "→", dot: "·", dash: "—", ellipsis: "…",
		barFull: "█", barEmpty: "░", up: "↑", down: "↓",
	}
}

// wrap word-wraps s at spaces to width (hard-wrapping words longer than the
// width; unlike ansi.Wrap it never breaks at hyphens, which names and paths
// are full of) and indents every line by indent spaces.
func wrap(s string, width, indent int) []string {
	w := max(width-indent, 10)
	pad := strings.Repeat(" ", indent)
	var out []string
	for _, para := range strings.Split(s, "\n") {
		line, lineW := "", 0
		flush := func() {
			out = append(out, pad+line)
			line, lineW = "", 0
		}
		for _, word := range strings.Fields(para) {
			ww := ansi.StringWidth(word)
			if lineW > 0 && lineW+1+ww <= w {
				line, lineW = line+" "+word, lineW+1+ww
				continue
			}
			if lineW > 0 {
				flush()
			}
			if ww <= w {
				line, lineW = word, ww
				continue
			}
			pieces := strings.Split(ansi.Hardwrap(word, w, false), "\n")
			for _, p := range pieces[:len(pieces)-1] {
				out = append(out, pad+p)
			}
			line = pieces[len(pieces)-1]
			lineW = ansi.StringWidth(line)
		}
		flush()
	}
	return out
}

// truncate cuts every line of s to width cells.
func truncate(lines []string, width int, tail string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		if ansi.StringWidth(l) > width {
			l = ansi.Truncate(l, width-ansi.StringWidth(tail), "") + tail
		}
		out[i] = l
	}
	return out
}

// padRight pads s with spaces to n cells.
func padRight(s string, n int) string {
	if w := ansi.StringWidth(s); w < n {
		return s + strings.Repeat(" ", n-w)
	}
	return s
}

// fmtDuration formats a duration for people: 0.4s, 12.3s, 1m02s, 1h02m.
func fmtDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Round(100*time.Millisecond).Seconds())
	case d < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	default:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
}

// statusMarker is the styled marker of a check status.
func (m *Model) statusMarker(status string) string {
	switch status {
	case StatusPass:
		return m.st.ok.Render(m.g.pass)
	case StatusWarn:
		return m.st.warn.Render(m.g.warn)
	case StatusFail:
		return m.st.fail.Render(m.g.fail)
	default:
		return m.st.faint.Render(m.g.skip)
	}
}

// wrapCommand lays out a shell command, "$ " first, at most width
// columns wide, so that it can be copied whole: it breaks only between
// words outside single quotes, ends each broken line with " \" (the
// shell's continuation) and indents the rest; a trailing "# comment"
// is never broken (a continuation inside it would end the command).
func wrapCommand(cmd string, width, indent int) []string {
	pad := strings.Repeat(" ", indent)
	var words []string
	code, comment, _ := strings.Cut(cmd, "#")
	if strings.Count(code, "'")%2 != 0 { // a # inside quotes: no comment
		code, comment = cmd, ""
	}
	word, quoted := "", false
	for _, r := range code {
		switch {
		case r == '\'':
			quoted = !quoted
			word += string(r)
		case r == ' ' && !quoted:
			if word != "" {
				words = append(words, word)
			}
			word = ""
		default:
			word += string(r)
		}
	}
	if word != "" {
		words = append(words, word)
	}
	if comment != "" {
		// Keep the gap before the comment as the command had it.
		words = append(words, "  #"+comment)
	}
	var out []string
	line := pad + "$ "
	for i, w := range words {
		sep := " "
		if i == 0 || strings.HasPrefix(w, "  #") {
			sep = ""
		}
		if i > 0 && ansi.StringWidth(line+sep+w)+2 > width {
			out = append(out, line+" \\")
			line = pad + "    " + strings.TrimLeft(w, " ")
			continue
		}
		line += sep + w
	}
	return append(out, line)
}
