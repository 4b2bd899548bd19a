/** `1 step`, `2 steps` (`pluralNoun` where adding an s is wrong): a count with its noun, for messages. */
export function plural(n: number, noun: string, pluralNoun = `${noun}s`): string {
  return `${n.toLocaleString('en')} ${n === 1 ? noun : pluralNoun}`;
}
