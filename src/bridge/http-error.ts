/** A request the bridge refuses, with the HTTP status to answer and the message for `{"error": …}`. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "HttpError";
  }
}
