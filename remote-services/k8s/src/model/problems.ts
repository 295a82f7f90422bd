// What the model could not use, and why: an object of the API or a pod port a host
// recorded that is left out of the chains. The controller logs each once.

export interface Problem {
  /** `Node n1`, `Pod default/web-1`, `pod port n1/nc0a1b2c3d4e5`. */
  object: string;
  message: string;
}

export class Problems {
  readonly list: Problem[] = [];

  /** Records a problem; returns undefined so a caller can `return problems.add(...)`. */
  add(object: string, message: string): undefined {
    this.list.push({ object, message });
    return undefined;
  }
}
