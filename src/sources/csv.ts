/**
 * RFC 4180 field parsing of one CSV record (already split off by `RecordScanner` and decoded): fields
 * separated by commas; a field that starts with '"' is quoted, may hold commas, newlines and doubled
 * quotes (""), and must end with '"' followed by a comma or the end of the record. A quote inside an
 * unquoted field is kept as a literal character (as pandas does).
 */

export type CsvParse = { fields: string[] } | { error: string; column: number };

const QUOTE = 0x22;
const COMMA = 0x2c;

/** `text` must not contain the record's line ending. `column` in an error is 0-based. */
export function parseCsvRecord(text: string): CsvParse {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    if (text.charCodeAt(i) === QUOTE) {
      let value = '';
      let start = ++i;
      for (;;) {
        const q = text.indexOf('"', i);
        if (q < 0) return { error: 'quoted field is never closed', column: fields.length };
        if (text.charCodeAt(q + 1) === QUOTE) {
          value += text.slice(start, q + 1); // "" is one literal quote
          start = i = q + 2;
          continue;
        }
        value += text.slice(start, q);
        i = q + 1;
        break;
      }
      fields.push(value);
      if (i === text.length) return { fields };
      if (text.charCodeAt(i) !== COMMA) {
        return { error: 'unexpected text after the closing quote', column: fields.length - 1 };
      }
      i++;
    } else {
      const comma = text.indexOf(',', i);
      if (comma < 0) {
        fields.push(text.slice(i));
        return { fields };
      }
      fields.push(text.slice(i, comma));
      i = comma + 1;
    }
  }
}
