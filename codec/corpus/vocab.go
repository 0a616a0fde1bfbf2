package corpus

// Free text of the simulated users. Tuned families draw from vocabA,
// held-out ones from vocabB: the two share no phrase, nickname or name, so
// a dictionary learned on the tuned half knows none of the held-out text.
type vocab struct {
	phrases  []string // chat and SMS text
	nicks    []string
	impresas []string // status lines
	lists    []string // buddy-list names
	groups   []string // group (PG) names
	cities   []string
}

var vocabA = &vocab{
	phrases: []string{
		"ni hao", "hello", "where are you", "ok", "see you tomorrow", "haha", "dinner at 7?",
		"on my way", "call me", "thanks!", "good night", "meeting moved to 3pm", "lol", "busy now",
		"what time?", "sure", "no problem", "I'm at the station", "did you get my mail?",
		"\u4f60\u597d", "\u5728\u5417", "\u597d\u7684", "\u8c22\u8c22", "\u660e\u5929\u89c1",
		"\u665a\u4e0a\u4e00\u8d77\u5403\u996d\u5427", "\u6211\u5230\u4e86", "\u7b49\u6211\u4e00\u4e0b",
		"\u54c8\u54c8\u54c8", "\u4eca\u5929\u5929\u6c14\u4e0d\u9519", ":)", "ok ok", "\u55ef",
	},
	nicks: []string{"xiaoming", "lili", "\u5c0f\u738b", "Tom", "jack", "amy", "wangwei", "zhangsan",
		"\u963f\u5f3a", "sunny", "\u5c0f\u718a", "kevin", "\u674e\u96f7", "echo"},
	impresas: []string{"", "", "busy", "\u5fd9", "at work", "\u5728\u5f00\u4f1a",
		"happy new year", "\u52a0\u6cb9!", "away for lunch"},
	lists:  []string{"jiaren", "chengdu", "friends", "work", "classmates", "family", "\u540c\u4e8b"},
	groups: []string{"class 2003", "\u7bee\u7403\u7fa4", "hiking club", "\u8001\u4e61\u4f1a"},
	cities: []string{"10", "20", "21", "28", "755"},
}

var vocabB = &vocab{
	phrases: []string{
		"hi", "are you free tonight", "yes", "no", "wait a minute", "got it", "see u",
		"running late, 10 min", "where shall we meet?", "happy birthday!!", "call you later",
		"the train is delayed", "can you send me the file", "sleeping", "miss you", "hmm",
		"\u65e9\u4e0a\u597d", "\u4f60\u5728\u54ea\u513f", "\u6536\u5230", "\u4e0d\u884c",
		"\u4e00\u4f1a\u513f\u7ed9\u4f60\u6253\u7535\u8bdd", "\u751f\u65e5\u5feb\u4e50",
		"\u8def\u4e0a\u5835\u8f66\u4e86", "\u5468\u672b\u53bb\u722c\u5c71\u5417", "\u5bf9",
		"\u6ca1\u95ee\u9898", "\u6211\u4e5f\u662f", ":D", "???", "\u563f\u563f",
	},
	nicks: []string{"huahua", "\u5927\u4f1f", "Lucy", "peter", "xiaoyu", "\u5f20\u4f1f", "Mike",
		"dongdong", "\u6625\u82b1", "ray", "\u5c0f\u7ea2", "bob_zhang", "\u9648\u6668", "joy"},
	impresas: []string{"", "", "on holiday", "\u5728\u5bb6", "driving", "\u7761\u89c9\u4e2d",
		"exam week", "\u5fc3\u60c5\u4e0d\u9519", "call me"},
	lists:  []string{"\u597d\u53cb", "colleagues", "dorm", "relatives", "\u540c\u5b66", "gym"},
	groups: []string{"\u516c\u53f8\u4ea4\u6d41\u7fa4", "photo fans", "\u9ad8\u4e2d\u540c\u5b66", "football"},
	cities: []string{"10", "22", "23", "27", "571"},
}

// HeldOutText is the free text only held-out families use (vocabB entries
// of at least 6 bytes that vocabA lacks): a dictionary learned on the
// tuned families contains none of it.
func HeldOutText() []string {
	inA := map[string]bool{}
	for _, l := range [][]string{vocabA.phrases, vocabA.nicks, vocabA.impresas, vocabA.lists, vocabA.groups} {
		for _, s := range l {
			inA[s] = true
		}
	}
	var out []string
	for _, l := range [][]string{vocabB.phrases, vocabB.nicks, vocabB.impresas, vocabB.lists, vocabB.groups} {
		for _, s := range l {
			if len(s) >= 6 && !inA[s] {
				out = append(out, s)
			}
		}
	}
	return out
}
