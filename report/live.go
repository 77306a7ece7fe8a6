package report

import "fmt"

// LiveSummary describes the confirmation of a check of a mounted
// filesystem (`check --live`): its candidate findings were re-judged on
// fresh re-reads, and those that went away are transient.
type LiveSummary struct {
	// Transient counts the candidate findings that went away on a fresh
	// re-read (keys of different moments seen side by side); they are
	// not problems and do not set exit code 4.
	Transient       int            `json:"transient"`
	TransientByCode map[string]int `json:"transient_by_code,omitempty"`
	// Scans is how many scans were made: a scan that met nodes it could
	// not read is made again from a fresh read of the journal.
	Scans int `json:"scans"`
	// Rereads is how many fresh re-reads a finding had to hold on.
	Rereads int `json:"rereads"`
	// JournalSeqs are the newest journal seqs of the scan and of each
	// re-read; Idle says the journal did not move between the re-reads.
	JournalSeqs []uint64 `json:"journal_seqs,omitempty"`
	Idle        bool     `json:"idle"`
	// NodeRetries counts node reads that failed and were retried after a
	// fresh read of the parent; NodeRetriesRecovered those then read.
	NodeRetries          int64 `json:"node_retries"`
	NodeRetriesRecovered int64 `json:"node_retries_recovered"`
	// DirectReads counts node reads through O_DIRECT.
	DirectReads int64 `json:"direct_reads"`
}

// CountTransient fills the transient counts from the findings that went
// away.
func (l *LiveSummary) CountTransient(fs []Finding) {
	l.Transient = len(fs)
	l.TransientByCode = map[string]int{}
	for i := range fs {
		l.TransientByCode[fs[i].Code]++
	}
}

// liveLine is the text summary's line about a live check.
func liveLine(l *LiveSummary) string {
	s := fmt.Sprintf("Live: %d transient finding(s) dismissed", l.Transient)
	for _, c := range sortedKeys(l.TransientByCode) {
		s += fmt.Sprintf(", %s %d", c, l.TransientByCode[c])
	}
	s += fmt.Sprintf("; %d scan(s); %d node read(s) retried, %d read on retry; %d O_DIRECT node read(s)\n", l.Scans, l.NodeRetries, l.NodeRetriesRecovered, l.DirectReads)
	return s
}
