// Input quoted back in an error message: at most a short prefix of it. Whoever sent a
// megabyte of bad input hears which input was wrong without getting the megabyte back
// (a reply that large stalls the connection, and fills logs).

/** The most characters of one input an error message quotes. */
export const CITE_MAX_CHARS = 48;

/**
 * `text` whole when short, else its first characters and how long it was; always
 * well-formed UTF-16 (see wellFormed), also when the cut falls inside a pair.
 */
export function cite(text: string, max = CITE_MAX_CHARS): string {
  if (text.length <= max) return wellFormed(text);
  return `${wellFormed(text.slice(0, max))}... (${text.length} characters)`;
}

/**
 * `text` with each lone surrogate replaced by U+FFFD. A status message that holds
 * one makes grpc-js throw (encodeURI) outside any handler, which ends the process:
 * whatever input a message quotes must pass through here.
 */
export function wellFormed(text: string): string {
  return text.replace(/\p{Surrogate}/gu, '\uFFFD');
}

/** At most `max` of `items`, and how many more there were: for messages that list problems. */
export function firstOf(items: readonly string[], max: number, separator = '; '): string {
  if (items.length <= max) return items.join(separator);
  return `${items.slice(0, max).join(separator)}${separator}and ${items.length - max} more`;
}
