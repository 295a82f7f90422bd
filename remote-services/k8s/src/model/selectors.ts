// Label selectors (metav1.LabelSelector) as the API server defines them: every
// matchLabels pair and every matchExpression must hold; an empty selector matches
// everything, an absent one (where the API says so) nothing.

import type { LabelSelector } from './objects';

export function selects(selector: LabelSelector, labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) if (l[key] !== value) return false;
  for (const e of selector.matchExpressions ?? []) {
    const key = e.key ?? '';
    const has = Object.prototype.hasOwnProperty.call(l, key);
    const values = e.values ?? [];
    switch (e.operator) {
      case 'In':
        if (!has || !values.includes(l[key])) return false;
        break;
      case 'NotIn':
        if (has && values.includes(l[key])) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        // The API server refuses other operators; one that got through selects nothing.
        return false;
    }
  }
  return true;
}
