/** Where the bridge reports connection trouble; `console` fits. Nothing it logs contains the token. */
export interface BridgeLogger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}
