package tui

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// stepFields are the fields each form step shows the errors of. The rules
// are the Backend's (Backend.Validate); the wizard only places its answers.
var stepFields = map[screen][]string{
	screenTarget:     {FieldContext, FieldClusterName},
	screenRelease:    {FieldRelease},
	screenComponents: {FieldComponents},
	screenAirGap:     {FieldBundle, FieldBundleKey, FieldRegistry},
	screenOverlay:    {FieldIstioOverlay, FieldGeneral},
}

// lastFormStep shows the errors no other step owns.
const lastFormStep = screenOverlay

// fieldStep returns the step that shows field's errors: the last form step
// for FieldGeneral and for fields it does not know.
func fieldStep(field string) screen {
	for s, fields := range stepFields {
		if slices.Contains(fields, field) {
			return s
		}
	}
	return lastFormStep
}

// invalid asks the Backend about the answers a and returns the messages for
// step s's fields, in the Backend's order.
func (m *Model) invalid(s screen, a Answers) []string {
	var out []string
	for _, fe := range m.opts.Backend.Validate(a) {
		if fieldStep(fe.Field) == s && fe.Message != "" {
			out = append(out, fe.Message)
		}
	}
	return out
}

// expandPath replaces a leading ~/ with the home directory.
func expandPath(p string) string {
	p = strings.TrimSpace(p)
	if strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[2:])
		}
	}
	return p
}
