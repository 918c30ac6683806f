// The part of the `jenkins` package (1.x, which ships no types) that client.ts calls.
declare module 'jenkins' {
  interface JenkinsOptions {
    baseUrl: string;
    headers?: Record<string, string>;
    crumbIssuer?: boolean;
    timeout?: number;
  }
  interface LogMeta {
    text: string;
    more: boolean;
    size?: number;
  }
  class Jenkins {
    constructor(opts: JenkinsOptions);
    info(): Promise<unknown>;
    job: {
      exists(name: string): Promise<boolean>;
      create(name: string, xml: string): Promise<void>;
      config(name: string): Promise<string>;
      config(name: string, xml: string): Promise<void>;
      disable(name: string): Promise<void>;
      list(opts: { name?: string; tree?: string }): Promise<unknown>;
      build(opts: { name: string; parameters: Record<string, string> }): Promise<number | undefined>;
    };
    queue: {
      item(number: number): Promise<unknown>;
    };
    build: {
      get(name: string, number: number): Promise<unknown>;
      log(opts: { name: string; number: number; start: number; meta: true }): Promise<LogMeta>;
    };
  }
  export default Jenkins;
}
