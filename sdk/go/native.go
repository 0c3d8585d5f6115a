//go:build !wasip1

package wasmpipe

import (
	"fmt"
	"os"
)

var levels = [...]string{"TRACE", "DEBUG", "INFO", "WARN", "ERROR"}

// Natively (in tests) log lines go to stderr.
func emitLog(level Level, message string, fields [][2]string) {
	line := levels[level] + " " + message
	for _, f := range fields {
		line += " " + f[0] + "=" + f[1]
	}
	fmt.Fprintln(os.Stderr, line)
}

func install() {}
