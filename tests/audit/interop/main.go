// Command verifynote checks a signed note with golang.org/x/mod/sumdb/note, the reference implementation of
// C2SP signed notes, so tunegate's checkpoints are verified by code tunegate did not write.
//
// Usage: verifynote NOTE_FILE VERIFIER_KEY...
// Prints the note text and the names of the verified signatures; exits 1 when note.Open refuses the note.
package main

import (
	"fmt"
	"os"

	"golang.org/x/mod/sumdb/note"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: verifynote NOTE_FILE VERIFIER_KEY...")
		os.Exit(2)
	}
	msg, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var verifiers []note.Verifier
	for _, vkey := range os.Args[2:] {
		v, err := note.NewVerifier(vkey)
		if err != nil {
			fmt.Fprintf(os.Stderr, "verifier key %q: %v\n", vkey, err)
			os.Exit(2)
		}
		verifiers = append(verifiers, v)
	}
	n, err := note.Open(msg, note.VerifierList(verifiers...))
	if err != nil {
		fmt.Fprintln(os.Stderr, "note.Open:", err)
		os.Exit(1)
	}
	fmt.Print(n.Text)
	for _, sig := range n.Sigs {
		fmt.Printf("verified %s+%08x\n", sig.Name, sig.Hash)
	}
	for _, sig := range n.UnverifiedSigs {
		fmt.Printf("unverified %s+%08x\n", sig.Name, sig.Hash)
	}
}
