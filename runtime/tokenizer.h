/* Report tokenizer (SPEC §2, §8b): ids [PAD]=0 [CLS]=1 [SEP]=2 [UNK]=3, then the vocabulary.
 * Two kinds of vocabulary share one type:
 *  - word-level, built from training reports: lower-cased words and single punctuation marks;
 *  - WordPiece, loaded from a BERT-style vocab.txt: each word is split greedily (longest match
 *    first) into a head piece and "##" continuation pieces; a word that cannot be split is [UNK].
 * Text is pre-split the same way in both: ASCII letters are lower-cased, whitespace separates
 * words, and every ASCII punctuation character is a word of its own. */
#ifndef RECLF_TOKENIZER_H
#define RECLF_TOKENIZER_H
#include <stdint.h>

#include "common.h"

enum { TOK_PAD = 0, TOK_CLS = 1, TOK_SEP = 2, TOK_UNK = 3, TOK_N_SPECIAL = 4 };

typedef struct {
    int n;            /* number of ids, specials included */
    char **words;     /* words[id] */
    int wordpiece;    /* 1: split words into ## pieces */
    int *table;       /* open-addressing hash: word -> id (-1 empty) */
    int table_size;   /* power of two */
} reclf_vocab;

/* Builds a word-level vocabulary from texts: words seen at least min_count times, the most
 * frequent first (ties alphabetically), at most max_size ids in all (specials included;
 * max_size <= 0 means no limit). */
int vocab_build(reclf_vocab *v, const char *const *texts, long n_texts, int min_count, int max_size, reclf_err *err);
/* Loads a BERT-style vocab.txt (one token per line). The four specials take ids 0..3 wherever
 * they appear in the file; the other lines follow in file order (duplicates dropped). */
int vocab_load_bert(reclf_vocab *v, const char *path, reclf_err *err);
void vocab_free(reclf_vocab *v);

/* Id of a token, or -1. */
int vocab_id(const reclf_vocab *v, const char *token);

/* [CLS] t1 .. tn [SEP] [PAD]... into ids[0..L-1]; a report longer than L-2 tokens is cut, and
 * [SEP] is kept as the last token. Returns the number of non-[PAD] tokens, or -1 if L < 2. */
int tokenize(const reclf_vocab *v, const char *text, int L, int32_t *ids);

/* Serialises to a malloc'ed string (stored in checkpoint metadata):
 *   "reclf-vocab 1 <wordpiece 0|1> <n>\n" then one token per line, ids in order. */
char *vocab_serialize(const reclf_vocab *v);
int vocab_deserialize(reclf_vocab *v, const char *s, reclf_err *err);

#endif
